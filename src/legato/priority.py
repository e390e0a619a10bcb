"""Priority levels: a vocabulary the core and the shell share.

A workflow and each run have a priority (:mod:`legato.machine`), and the
broker has one task queue per level (:mod:`legato.broker`). It lives apart
from both, importing nothing of legato, so the broker needs nothing of the machine.
"""

from __future__ import annotations

from enum import IntEnum


class Priority(IntEnum):
    """Run priority; tasks inherit the priority of their run."""

    LOW = 0
    NORMAL = 1
    HIGH = 2

    @classmethod
    def parse(cls, value: int | str | Priority) -> Priority:
        if isinstance(value, Priority):
            return value
        if isinstance(value, bool):  # an int to Python, but no priority: True is not "normal"
            raise ValueError(f"priority must be low, normal or high (or 0, 1, 2), got {value!r}")
        if isinstance(value, str):
            key = value.strip().upper()
            if key in cls.__members__:
                return cls[key]
            if key.lstrip("-").isdigit():
                value = int(key)
            else:
                names = ", ".join(m.lower() for m in cls.__members__)
                raise ValueError(f"unknown priority {value!r}; use one of {names}")
        if isinstance(value, int) and value in {p.value for p in cls}:
            return cls(value)
        raise ValueError(f"priority must be 0, 1 or 2 (low, normal, high), got {value!r}")
