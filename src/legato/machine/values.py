"""JSON-shaped values that flow through runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

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
