"""Keeping secrets out of messages and logs.

A connection URL carries its password in two places: ``user:pass@host`` and
the query (``?password=…``, or any parameter whose name looks secret, such as
``sslpassword``, ``token`` or ``api_key``). :func:`redact` masks both in one
URL; :func:`redact_text` masks them wherever they appear in free text (an
exception message quoting a DSN, a ``password=…`` pair of a libpq string),
and :class:`RedactingFormatter` applies it to every log line, tracebacks
included, so no log level can print one.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

from legato.logs import JsonFormatter
from legato.printable import printable, printable_json

MASK = "***"

_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|auth|cred|sig", re.IGNORECASE)
"""Query parameter names whose values are masked (``password``, ``sslpassword``,
``access_token``, ``api_key``, ``authorization``, ``credentials``, ``signature``...)."""

_URL = re.compile(r"""\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'"<>`]*[^\s'"<>`,.;:)\]]""")
"""A URL in text, not the punctuation after it (``at postgresql://db/app, then``)."""
_PAIR = re.compile(
    r"""(?P<name>\b[\w\-]*(?:pass|pwd|secret|token|api[_\-]?key|auth|cred)[\w\-]*)"""
    r"""(?P<sep>\s*[=:]\s*)(?P<value>'[^']*'|"[^"]*"|[^\s&,;'"]+)""",
    re.IGNORECASE,
)
"""``password=…``, ``token: …`` outside URLs (libpq keyword strings, messages)."""


def redact(url: str) -> str:
    """A URL without its secrets (password and secret-looking query values)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    rest = _mask_userinfo(rest)
    rest = _mask_query(rest)
    return f"{scheme}://{rest}" if sep else rest


def _mask_userinfo(rest: str) -> str:
    # The last "@" before the query ends the credentials, so a password holding
    # an unescaped "/" or "@" is masked whole.
    at = rest.split("?", 1)[0].rfind("@")
    if at < 0:
        return rest
    credentials, tail = rest[:at], rest[at + 1 :]
    user = credentials.split(":", 1)[0]
    masked = f"{user}:{MASK}" if ":" in credentials else user
    return f"{masked}@{tail}"


def _mask_query(rest: str) -> str:
    before, sep, query = rest.partition("?")
    if not sep:
        return rest
    query, hash_sep, fragment = query.partition("#")
    parts = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        if eq and _SECRET_NAME.search(unquote(name)):
            part = f"{name}={MASK}"
        parts.append(part)
    return f"{before}?{'&'.join(parts)}{hash_sep}{fragment}"


def redact_text(text: str) -> str:
    """``text`` with every URL's secrets and every ``password=…`` pair masked."""
    if "://" in text:
        text = _URL.sub(lambda m: redact(m.group(0)), text)
    return _PAIR.sub(_mask_pair, text)


def _mask_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    if value == MASK:
        return match.group(0)
    return f"{match.group('name')}{match.group('sep')}{MASK}"


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter: every line it makes, traceback included, has its secrets
    masked -- whoever logged it (legato, aio-pika's reconnect messages quoting
    the URL, asyncpg) and at whatever level -- and its control characters escaped."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner
        self.escape = printable_json if isinstance(inner, JsonFormatter) else printable

    def format(self, record: logging.LogRecord) -> str:
        # A log line is shown to a person too: no control sequence gets through
        # (and a JSON line stays JSON).
        return self.escape(redact_text(self.inner.format(record)))


def redact_logging(logger: logging.Logger | None = None) -> None:
    """Make every handler of ``logger`` (the root logger) mask secrets."""
    for handler in (logger or logging.getLogger()).handlers:
        formatter = handler.formatter or logging.Formatter()
        if not isinstance(formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(formatter))
