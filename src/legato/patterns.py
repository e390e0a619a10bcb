"""Failure patterns: what a failure is, without the values that vary.

``dlq list --group-by error`` and the dashboard group failures by their error
type and this normalised message, so that one cause with many inputs (an
unknown event name, an order number, a run id) is one pattern, not hundreds.
Pure: no I/O, so the grouping is the same on every store.
"""

from __future__ import annotations

import re

QUOTED = "'*'"
NUMBER = "<n>"
UUID = "<uuid>"
HEX = "<hex>"

# A quote that opens and closes a value, not an apostrophe inside a word (can't).
_QUOTED = re.compile(r"""(?<!\w)'[^'\n]*'(?!\w)|(?<!\w)"[^"\n]*"(?!\w)""")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
# Hex ids (hashes, object ids): ``0x...``, or eight or more hex digits with both a
# digit and a letter in them, so that neither a word made of the letters a-f
# (``defaced``) nor a long decimal number (a number, masked as one) counts.
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")
# A number that is a value (42, -1.5, 3e9, 10:30), not part of a name (sha256, utf8, v2).
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.:,]\d+)*(?:[eE][-+]?\d+)?")


def error_pattern(message: str) -> str:
    """``message`` with quoted values, uuids, hex ids and numbers masked.

    Idempotent: a pattern is its own pattern.
    """
    masked = _QUOTED.sub(lambda m: m.group(0)[0] + "*" + m.group(0)[0], message)
    masked = _UUID.sub(UUID, masked)
    masked = _HEX.sub(HEX, masked)
    return _NUMBER.sub(NUMBER, masked)


def failure_key(error_type: str | None, message: str | None) -> str:
    """The pattern a failure belongs to: its error type and normalised message
    (a poison message has no error type: its reason alone)."""
    text = error_pattern(message or "")
    if not error_type:
        return text
    return f"{error_type}: {text}" if text else error_type
