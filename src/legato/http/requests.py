"""Reading an ingress request: its key, its body, its options; and errors as JSON.

Everything a caller can get wrong is a :class:`BadRequest` with a message
that names the problem, answered before anything is started.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from legato.errors import BrokerError, StoreError
from legato.machine.definition import Priority
from legato.messages import MalformedMessage, decode_json_object

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

IDEMPOTENCY_HEADER = "Idempotency-Key"
PRIORITY_HEADER = "X-Legato-Priority"
MAX_KEY_LENGTH = 255
_KEY_TEXT = re.compile(r"[\x20-\x7e]+")


class BadRequest(Exception):
    """A request legato will not act on; ``status`` is the 4xx to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(value),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A refusal as ``{"error": ...}`` with its status; an outage as 503, never a bare 500."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return json_response({"error": str(exc)}, exc.status)
    except web.HTTPRequestEntityTooLarge as exc:
        return json_response({"error": f"the body is too large: {exc.text}"}, 413)
    except web.HTTPException as exc:
        if exc.status >= 400:
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return json_response({"error": exc.reason}, exc.status, allow)
        raise
    except (StoreError, BrokerError) as exc:
        return json_response({"error": f"not accepted, try again: {exc}"}, 503, {"Retry-After": "1"})


def idempotency_key(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header (IETF httpapi draft): a structured-field
    string, ``"8e03978e-..."``; a bare token is accepted too, as most providers send one."""
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None:
        return None
    text = raw.strip()
    if text.startswith('"'):
        text = _sf_string(text)
    if not text:
        raise BadRequest(f"the {IDEMPOTENCY_HEADER} header is empty")
    return check_key(text, IDEMPOTENCY_HEADER)


def check_key(key: str, what: str) -> str:
    if len(key) > MAX_KEY_LENGTH:
        raise BadRequest(f"{what} is {len(key)} characters long; at most {MAX_KEY_LENGTH}")
    if not _KEY_TEXT.fullmatch(key):
        raise BadRequest(f"{what} must be printable ASCII text")
    return key


def check_name(name: str, what: str) -> str:
    """An event or signal name from a path: text the database can keep."""
    if not name.isprintable():
        raise BadRequest(f"{what} {name!r} has control characters")
    return name


def _sf_string(text: str) -> str:
    """RFC 8941 sf-string: quoted, with ``\\"`` and ``\\\\`` the only escapes."""
    out: list[str] = []
    escaped = False
    for index, char in enumerate(text[1:], start=1):
        if escaped:
            if char not in '"\\':
                raise BadRequest(f'{IDEMPOTENCY_HEADER}: only \\" and \\\\ may be escaped')
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            if index != len(text) - 1:
                raise BadRequest(f"{IDEMPOTENCY_HEADER}: text after the closing quote")
            return "".join(out)
        else:
            out.append(char)
    raise BadRequest(f"{IDEMPOTENCY_HEADER}: the quoted string is not closed")


def content_key(name: str, raw: bytes) -> str:
    """The key of an event sent without one, as for an AMQP event without ``message_id``."""
    return "sha256:" + hashlib.sha256(name.encode() + b"\0" + raw).hexdigest()


async def raw_body(request: web.Request) -> bytes:
    """The body as sent; over the size limit, aiohttp raises 413 (see ``errors``)."""
    return await request.read()


def json_object(raw: bytes, what: str, *, empty_ok: bool = False) -> dict[str, Any]:
    if not raw.strip() and empty_ok:
        return {}
    try:
        return decode_json_object(raw)
    except MalformedMessage as exc:
        raise BadRequest(f"{what}: {exc}") from None


def priority_header(request: web.Request) -> Priority | None:
    raw = request.headers.get(PRIORITY_HEADER)
    return None if raw is None else parse_priority(raw, PRIORITY_HEADER)


def parse_priority(raw: Any, what: str) -> Priority:
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise BadRequest(f"{what} must be low, normal or high (or 0, 1, 2)")
    try:
        return Priority.parse(raw)
    except ValueError as exc:
        raise BadRequest(f"{what}: {exc}") from None


def wait_seconds(request: web.Request, most: float) -> float | None:
    raw = request.query.get("wait")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        raise BadRequest(f"wait must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(seconds) or seconds < 0 or seconds > most:
        raise BadRequest(f"wait must be between 0 and {most:g} seconds, got {raw!r}")
    return seconds


_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def trace_context(request: web.Request) -> dict[str, str] | None:
    """The caller's W3C trace context, so the run's trace continues it; a malformed one is ignored."""
    parent = request.headers.get("traceparent", "").strip()
    if not _TRACEPARENT.fullmatch(parent):
        return None
    found = {"traceparent": parent}
    state = request.headers.get("tracestate")
    if state and _KEY_TEXT.fullmatch(state):
        found["tracestate"] = state
    return found
