"""One transition at a time per run, within a process.

Steps of one run that finish together (a map's items, a parallel state's
branches) would each decide from the same version, and all but one would lose
the optimistic-lock race, read the run again and decide again: with N at
once, O(N^2) work. Taking turns per run makes them queue instead, and hands
each the run its predecessor committed, so they do not even read it. Across
processes the version check still decides; this only saves wasted work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from legato.machine.run import Run


@dataclass(eq=False)
class Turn:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0
    latest: Run | None = None
    """The run as the last holder committed it, for the next one."""

    def fresher(self, run: Run | None) -> Run | None:
        """``run``, or the run the previous holder committed if that is newer."""
        latest = self.latest
        if latest is not None and (run is None or latest.version > run.version):
            return latest
        return run


class Turns:
    def __init__(self) -> None:
        self._turns: dict[str, Turn] = {}

    @asynccontextmanager
    async def take(self, run_id: str) -> AsyncIterator[Turn]:
        turn = self._turns.get(run_id)
        if turn is None:
            turn = self._turns[run_id] = Turn()
        turn.users += 1
        try:
            async with turn.lock:
                yield turn
        finally:
            turn.users -= 1
            if turn.users == 0:
                # Nobody waits: forget the run, so memory follows the runs in flight.
                del self._turns[run_id]

    def __len__(self) -> int:
        return len(self._turns)
