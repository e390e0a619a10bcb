"""Conditions for ``choice`` states, as data.

Conditions are values, not lambdas, so that a definition can be serialised,
loaded from YAML/JSON, drawn as a graph and compared. Build them with
:class:`Field`::

    (Field("total") > 1000) & (Field("customer.tier") != "gold")
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from legato.machine.values import JSON, Data, lookup

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}
_SYMBOL = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


class Condition:
    """Base of every condition; combine with ``&``, ``|`` and ``~``."""

    def holds(self, data: Data) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def to_json(self) -> JSON:
        raise NotImplementedError

    def __and__(self, other: Condition) -> Condition:
        return All((self, other))

    def __or__(self, other: Condition) -> Condition:
        return Any_((self, other))

    def __invert__(self) -> Condition:
        return Not(self)


@dataclass(frozen=True)
class Compare(Condition):
    path: str
    op: str
    value: JSON

    def holds(self, data: Data) -> bool:
        found, actual = lookup(data, self.path)
        if not found:
            return False
        try:
            return bool(_COMPARE[self.op](actual, self.value))
        except TypeError:
            # Comparing a string with a number is "does not hold", not a crash:
            # data comes from outside and a choice must always pick a branch.
            return False

    def describe(self) -> str:
        return f"{self.path} {_SYMBOL[self.op]} {self.value!r}"

    def to_json(self) -> JSON:
        return {"field": self.path, "op": self.op, "value": self.value}


@dataclass(frozen=True)
class Exists(Condition):
    path: str

    def holds(self, data: Data) -> bool:
        return lookup(data, self.path)[0]

    def describe(self) -> str:
        return f"{self.path} exists"

    def to_json(self) -> JSON:
        return {"field": self.path, "op": "exists"}


@dataclass(frozen=True)
class IsIn(Condition):
    path: str
    values: tuple[JSON, ...]

    def holds(self, data: Data) -> bool:
        found, actual = lookup(data, self.path)
        return found and actual in self.values

    def describe(self) -> str:
        return f"{self.path} in {list(self.values)!r}"

    def to_json(self) -> JSON:
        return {"field": self.path, "op": "in", "value": list(self.values)}


@dataclass(frozen=True)
class All(Condition):
    parts: tuple[Condition, ...]

    def holds(self, data: Data) -> bool:
        return all(part.holds(data) for part in self.parts)

    def describe(self) -> str:
        return " and ".join(f"({part.describe()})" for part in self.parts)

    def to_json(self) -> JSON:
        return {"all": [part.to_json() for part in self.parts]}


@dataclass(frozen=True)
class Any_(Condition):
    parts: tuple[Condition, ...]

    def holds(self, data: Data) -> bool:
        return any(part.holds(data) for part in self.parts)

    def describe(self) -> str:
        return " or ".join(f"({part.describe()})" for part in self.parts)

    def to_json(self) -> JSON:
        return {"any": [part.to_json() for part in self.parts]}


@dataclass(frozen=True)
class Not(Condition):
    part: Condition

    def holds(self, data: Data) -> bool:
        return not self.part.holds(data)

    def describe(self) -> str:
        return f"not ({self.part.describe()})"

    def to_json(self) -> JSON:
        return {"not": self.part.to_json()}


@dataclass(frozen=True)
class Field:
    """A dotted path into the run's data, the left side of a condition."""

    path: str

    # Field is a builder, not a value: == returns a Condition, like SQLAlchemy.
    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, value: object) -> Condition:  # type: ignore[override]
        return Compare(self.path, "eq", value)

    def __ne__(self, value: object) -> Condition:  # type: ignore[override]
        return Compare(self.path, "ne", value)

    def __lt__(self, value: JSON) -> Condition:
        return Compare(self.path, "lt", value)

    def __le__(self, value: JSON) -> Condition:
        return Compare(self.path, "le", value)

    def __gt__(self, value: JSON) -> Condition:
        return Compare(self.path, "gt", value)

    def __ge__(self, value: JSON) -> Condition:
        return Compare(self.path, "ge", value)

    def exists(self) -> Condition:
        return Exists(self.path)

    def is_in(self, values: Sequence[JSON]) -> Condition:
        return IsIn(self.path, tuple(values))


def condition_from_json(raw: JSON) -> Condition:
    """Inverse of :meth:`Condition.to_json`, for definitions loaded from files."""
    if not isinstance(raw, dict):
        raise ValueError(f"a condition must be an object, got {raw!r}")
    if "all" in raw:
        return All(tuple(condition_from_json(part) for part in raw["all"]))
    if "any" in raw:
        return Any_(tuple(condition_from_json(part) for part in raw["any"]))
    if "not" in raw:
        return Not(condition_from_json(raw["not"]))
    path, op = raw.get("field"), raw.get("op")
    if not isinstance(path, str) or not isinstance(op, str):
        raise ValueError(f"a condition needs 'field' and 'op', got {raw!r}")
    if op == "exists":
        return Exists(path)
    if op == "in":
        return IsIn(path, tuple(raw.get("value") or ()))
    if op not in _COMPARE:
        raise ValueError(f"unknown condition operator {op!r}; use one of {sorted(_COMPARE)}")
    return Compare(path, op, raw.get("value"))
