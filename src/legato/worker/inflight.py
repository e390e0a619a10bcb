"""The step attempts running in this worker, so that a run's end reaches them.

When a run is cancelled or fails, its running handlers are of no use any more
(their results would be dropped, or compensated). The store tells every worker
when a run's status changes (the run-watch role: Postgres NOTIFY), and the
worker interrupts the attempts of that run it is running
(legato/interruption.py). A run that starts compensating interrupts its steps
but not its compensations; one that stops interrupts both.

Keeping the registry costs two dict operations per attempt and no database
round trip. A status change that lands between a step's read of its run and
its registration here is remembered for a while, so that step is interrupted
as it registers -- once a fresh read of the run confirms it. The notification
of a resume (a replay, a retry) can arrive after the resumed step itself (the
step comes through RabbitMQ, the notification through another connection),
and a remembered end must not stop a step of a run that was resumed since.
"""

from __future__ import annotations

import collections
import logging
from typing import assert_never

import anyio

from legato.clock import Clock
from legato.interruption import Interruption
from legato.machine.run import RunStatus, StepKind
from legato.store.ports import RunWatch

log = logging.getLogger("legato.worker")

REMEMBER_FOR = 60.0
"""Seconds a run's end is remembered for steps that register after it."""
REMEMBER_AT_MOST = 10_000
RESUBSCRIBE_EVERY = 5.0
"""Seconds between checks that the store's listener is still there."""


def interrupts(status: RunStatus, kind: StepKind) -> str | None:
    """Why an attempt of ``kind`` stops when its run turns ``status`` (None: it goes on)."""
    match status:
        case RunStatus.CANCELLED:
            return "the run was cancelled"
        case RunStatus.FAILED:
            return "the run failed"
        case RunStatus.COMPENSATED:
            return "the run was compensated"
        case RunStatus.COMPENSATING:
            return "the run is compensating" if kind is StepKind.STEP else None
        case RunStatus.PENDING | RunStatus.RUNNING | RunStatus.SUCCEEDED | RunStatus.SUSPENDED:
            return None
        case RunStatus.PAUSED:
            # A pause lets running attempts finish; it only holds the next ones.
            return None
        case _:
            assert_never(status)


class InFlight:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._runs: dict[str, list[Interruption]] = {}
        self._ended: collections.OrderedDict[str, tuple[RunStatus, float]] = collections.OrderedDict()
        self.interrupted = 0
        """Attempts interrupted so far (for tests and logs)."""

    def add(self, run_id: str, stop: Interruption) -> RunStatus | None:
        """An attempt of ``run_id`` starts here; ``stop.kind`` says what it runs.

        Returns the end remembered for the run, if there is one: the caller
        reads the run again and hands its status to :meth:`confirm`.
        """
        attempts = self._runs.get(run_id)
        if attempts is None:
            self._runs[run_id] = [stop]
        else:
            attempts.append(stop)
        if self._ended:
            ended = self._ended.get(run_id)
            if ended is not None and self.clock.monotonic() - ended[1] < REMEMBER_FOR:
                return ended[0]
        return None

    def confirm(self, run_id: str, stop: Interruption, remembered: RunStatus, now: RunStatus | None) -> None:
        """``remembered`` ended the run while the attempt was on its way here, and
        ``now`` is the run's status read after the attempt registered (None: the
        run is gone). Interrupt it unless the run was resumed meanwhile; an end
        after that read reaches the registered attempt through :meth:`run_changed`."""
        if now is not None and interrupts(now, _kind(stop)) is None:
            self._ended.pop(run_id, None)  # resumed: its notification is on its way
            return
        self._stop(stop, now or remembered)

    def remove(self, run_id: str, stop: Interruption) -> None:
        attempts = self._runs[run_id]
        attempts.remove(stop)
        if not attempts:
            del self._runs[run_id]

    def running_attempts(self) -> int:
        return sum(len(attempts) for attempts in self._runs.values())

    def run_changed(self, run_id: str, status: RunStatus) -> None:
        """The store's watch: interrupt this run's attempts that ``status`` ends."""
        if status in (RunStatus.RUNNING, RunStatus.PENDING):
            self._ended.pop(run_id, None)  # resumed
        elif interrupts(status, StepKind.STEP) is not None:
            self._ended[run_id] = (status, self.clock.monotonic())
            self._ended.move_to_end(run_id)
            while len(self._ended) > REMEMBER_AT_MOST:
                self._ended.popitem(last=False)
        for stop in list(self._runs.get(run_id, ())):
            self._stop(stop, status)

    def _stop(self, stop: Interruption, status: RunStatus) -> None:
        reason = interrupts(status, _kind(stop))
        if reason is not None and not stop.requested:
            self.interrupted += 1
            stop.interrupt(reason)

    async def watch(self, store: RunWatch) -> None:
        """Listen for run changes for as long as the worker runs (a side task)."""
        while True:
            await store.subscribe_runs(self.run_changed)  # reconnects a listener that died
            await anyio.sleep(RESUBSCRIBE_EVERY)


def _kind(stop: Interruption) -> StepKind:
    return stop.kind if isinstance(stop.kind, StepKind) else StepKind.STEP
