"""Text shown to a person is data, never instructions to their terminal.

Control characters -- ESC (and so CSI and OSC sequences), BEL, the C1 controls,
DEL, the bidi marks and overrides -- are made visible as escapes (``\\x1b``),
so a run's data, an event name or an error cannot move the cursor, clear the
screen, retitle the window, forge a hyperlink or reorder what is shown. Tab
and newline stay as they are.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(value: object) -> str:
    """``value`` as text whose control characters are shown escaped (``\\x1b``)."""
    text = str(value)
    return _CONTROL.sub(_escape, text) if _CONTROL.search(text) else text


_JSON_UNESCAPED = re.compile(r"[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""What JSON lets through unescaped but a terminal may obey (JSON escapes C0 itself)."""


def printable_json(text: str) -> str:
    """JSON text with DEL, the C1 controls and the bidi marks escaped as JSON
    escapes (``\\u009b``): still the same JSON, but nothing a terminal obeys."""
    return _JSON_UNESCAPED.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
