"""The dashboard's query and path values, checked: a malformed one is a
:class:`BadRequest` naming it (HTTP 400), never a value a store chokes on."""

from __future__ import annotations

import math

from aiohttp import web

from legato.http.dashboard.service import BadRequest

LATEST_TIME = 253402300799.0
"""The last second of year 9999: a later ``before`` is no time any store can hold."""
LARGEST_ID = 2**63 - 1
MAX_TEXT = 1000


def time_param(request: web.Request, name: str) -> float | None:
    """A finite epoch time from the query (absent: None); anything else is a BadRequest."""
    given = request.query.get(name, "")
    if not given:
        return None
    try:
        value = float(given)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= LATEST_TIME:
        raise BadRequest(f"{name} must be a time in seconds since the epoch, got {given[:40]!r}")
    return value


def text(value: str, name: str) -> str:
    """A name from the query or the path: no NUL (no store can hold one), not absurdly long."""
    if "\x00" in value or len(value) > MAX_TEXT:
        raise BadRequest(f"{name} must be text without NUL characters, at most {MAX_TEXT} characters")
    return value


def text_param(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "")
    return text(value, name) if value else None


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    given = request.query.get(name, "")
    if not given:
        return default
    try:
        value = int(given)
    except ValueError:
        raise BadRequest(f"{name} must be an integer from {low} to {high}, got {given[:40]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}, got {value}")
    return value


def letter_id(request: web.Request) -> int:
    value = int(request.match_info["letter_id"])
    if value > LARGEST_ID:
        raise LookupError(f"no dead letter with id {value}")
    return value
