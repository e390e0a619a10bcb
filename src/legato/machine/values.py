"""JSON-shaped values that flow through runs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeAlias

import orjson

_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""A JSON escape of NUL: ``\\u0000`` after an even number of backslashes."""

JSON: TypeAlias = Any
"""Anything orjson can encode: dict, list, str, int, float, bool, None."""

Data: TypeAlias = Mapping[str, JSON]


def lookup(data: Data, path: str) -> tuple[bool, JSON]:
    """Find a dotted ``path`` (``customer.tier``, ``items.0.sku``) in ``data``.

    Returns ``(found, value)`` so that a present ``None`` differs from absence.
    """
    current: JSON = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return False, None
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(current) <= index < len(current):
                return False, None
            current = current[index]
        else:
            return False, None
    return True, current


def unstorable(value: JSON) -> str | None:
    """Why ``value`` cannot be kept as run data, or None when it can.

    Run data must be JSON, and JSON text Postgres can store: ``jsonb`` refuses
    the NUL character (``\\u0000``) anywhere in a string. Refusing it at the
    edge (handler outputs, event bodies, operator input) keeps one bad value
    from failing a whole transaction.
    """
    try:
        encoded = orjson.dumps(value)
    except TypeError as exc:
        return f"it is not JSON: {exc}"
    if _NUL.search(encoded):
        return "it contains a NUL character (\\u0000), which the database cannot store"
    return None
