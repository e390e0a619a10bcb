"""The run list's filters as people type them (``legato runs``, the dashboard):
``path=value`` search attributes and times given as ISO or as a duration ago."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from legato.machine.search import path_problem

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_where(texts: Iterable[str]) -> dict[str, str]:
    """``customer.id=42`` -> {"customer.id": "42"}; ValueError names a malformed one."""
    found: dict[str, str] = {}
    for text in texts:
        path, sep, value = text.partition("=")
        path = path.strip()
        problem = path_problem(path) if sep else f"{text!r} is not PATH=VALUE (e.g. customer.id=42)"
        if problem is not None:
            raise ValueError(problem)
        found[path] = value.strip()
    return found


def parse_when(text: str, now: float) -> float:
    """An ISO 8601 time (UTC unless it names its offset) or a duration ago
    (``90s``, ``15m``, ``2h``, ``7d``, ``1w``) -> epoch seconds."""
    ago = _AGO.match(text.strip().lower())
    if ago is not None:
        back = now - float(ago.group(1)) * _UNITS[ago.group(2)]
        if not math.isfinite(back) or back < 0:
            raise ValueError(f"{text!r} reaches back before 1970")
        return back
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO time (2026-12-01T09:30) nor a duration ago (2h, 7d)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
