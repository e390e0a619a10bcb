"""Time as a dependency: the engine asks a clock, tests can bring their own.

Everything in the worker and the broker that reads time asks a :class:`Clock`
(tests/unit/test_clock.py checks that nothing there reads it directly).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time, seconds since the epoch (what timers are stored in)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for ages within this process."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to; for tests of timers and deadlines."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._monotonic = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move both clocks on by ``seconds``."""
        self._now += seconds
        self._monotonic += seconds
