"""One transition at a time per run, within a process.

Steps of one run that finish together (a map's items, a parallel state's
branches) would each decide from the same version, and all but one would lose
the optimistic-lock race, read the run again and decide again: with N at
once, O(N^2) work. Taking turns per run makes them queue instead, and hands
each the run its predecessor committed, so they do not even read it; the
holder of a turn also sees who waits behind it, so that it can decide their
events with its own and commit them together (legato/engine.py). Across
processes the version check still decides; this only saves wasted work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio

from legato.machine.run import Run

T = TypeVar("T")


@dataclass(eq=False)
class Turn(Generic[T]):
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    latest: Run | None = None
    """The run as the last holder committed it, for the next one."""
    queue: list[T] = field(default_factory=list)
    """What each caller that holds or waits for the turn brought, in arrival
    order (the lock is fair: this is also the order of the turns)."""

    def fresher(self, run: Run | None) -> Run | None:
        """``run``, or the run the previous holder committed if that is newer."""
        latest = self.latest
        if latest is not None and (run is None or latest.version > run.version):
            return latest
        return run


class Turns(Generic[T]):
    def __init__(self) -> None:
        self._turns: dict[str, Turn[T]] = {}

    @asynccontextmanager
    async def take(self, run_id: str, item: T) -> AsyncIterator[Turn[T]]:
        """Wait for the run's turn, with ``item`` in its queue until the turn ends."""
        turn = self._turns.get(run_id)
        if turn is None:
            turn = self._turns[run_id] = Turn()
        turn.queue.append(item)
        try:
            async with turn.lock:
                yield turn
        finally:
            turn.queue.remove(item)
            if not turn.queue:
                # Nobody waits: forget the run, so memory follows the runs in flight.
                del self._turns[run_id]

    def __len__(self) -> int:
        return len(self._turns)
