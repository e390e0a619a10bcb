"""Search attributes: paths into a run's data whose values are indexed with the
run (``Workflow(..., search=("customer.id", "order_id"))``, docs/concepts.md).

A path is dot-separated keys of nested objects. Its value is kept as text, so
that ``customer.id=42`` finds the number 42 and the string "42" alike: a string
as it is, any other scalar as its JSON text (``true``, ``4.5``). A path that
leads nowhere, or to an object or a list, has no value (null).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from legato.machine.values import JSON

MAX_PATHS = 16
"""Search attributes a workflow may declare: each one is indexed with every run."""

_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


def path_problem(path: object) -> str | None:
    """What is wrong with ``path`` as a search attribute, or None."""
    if not isinstance(path, str) or not path:
        return f"a search path must be a non-empty string, got {path!r}"
    for segment in path.split("."):
        if not segment:
            return f"search path {path!r} has an empty key (two dots, or a dot at an end)"
        if not _SEGMENT.match(segment):
            return f"search path {path!r}: key {segment!r} may hold only letters, digits, '_' and '-'"
    return None


def paths_problem(paths: Iterable[object]) -> str | None:
    """What is wrong with a workflow's search paths, or None."""
    listed = list(paths)
    if len(listed) > MAX_PATHS:
        return f"at most {MAX_PATHS} search paths, got {len(listed)}"
    for path in listed:
        problem = path_problem(path)
        if problem is not None:
            return problem
    if len(set(listed)) != len(listed):
        return "a search path is listed twice"
    return None


def search_value(value: JSON) -> str | None:
    """A value as search attributes keep it."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, dict | list):
        return None
    return json.dumps(value)


def search_values(paths: Iterable[str], data: Mapping[str, JSON]) -> dict[str, str | None]:
    """The value of every path in ``data``."""
    found: dict[str, str | None] = {}
    for path in paths:
        value: JSON = data
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        found[path] = search_value(value)
    return found
