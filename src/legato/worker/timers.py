"""Firing durable timers: retries, waits, approval timeouts, deadlines.

Every worker polls the ``timers`` table; a timer is claimed with a lease
(``FOR UPDATE SKIP LOCKED`` on Postgres) and fired by a transition that
deletes its row in the same transaction, so no timer fires twice, and a
timer whose worker died is claimed again when the lease runs out.
"""

from __future__ import annotations

import logging
from typing import Protocol

import anyio

from legato.app import UnknownWorkflow
from legato.clock import Clock
from legato.engine import Engine
from legato.errors import RunNotFound
from legato.machine.commands import Rejection
from legato.machine.events import TimerFired
from legato.machine.vocabulary import TimerPurpose
from legato.scheduling.fire import ScheduleFirer
from legato.store.base import ConsumeTimer, DueTimer
from legato.store.ports import LeaseStore, TimerStore

log = logging.getLogger("legato.timers")


class TimersAndLeases(TimerStore, LeaseStore, Protocol):
    """The poller fires timers; a step lease's heartbeat timer, only once the lease ran out."""


class TimerPoller:
    def __init__(
        self,
        engine: Engine,
        store: TimersAndLeases,
        clock: Clock,
        poll_interval: float = 1.0,
        lease: float = 30.0,
        batch: int = 100,
        schedules: ScheduleFirer | None = None,
    ) -> None:
        self.schedules = schedules
        self.engine = engine
        self.store = store
        self.clock = clock
        self.poll_interval = poll_interval
        self.lease = lease
        self.batch = batch
        self._wake = anyio.Event()
        self._soonest: float | None = None

    def wake(self, fire_at: float) -> None:
        """A timer was scheduled (here or, via NOTIFY, elsewhere)."""
        if self._soonest is None or fire_at < self._soonest:
            self._soonest = fire_at
            self._wake.set()

    async def run(self) -> None:
        while True:
            # Cheap when the listener is alive; reconnects it after a restart.
            await self.store.subscribe_timers(self.wake)
            fired = await self.fire_due()
            if fired:
                continue
            await self._sleep()

    async def fire_due(self) -> int:
        """Fire the timers that are due now; return how many were claimed."""
        due = await self.store.claim_timers(self.clock.now(), self.lease, self.batch)
        if due:
            async with anyio.create_task_group() as group:
                for timer in due:
                    group.start_soon(self._fire, timer)
        return len(due)

    async def _fire(self, timer: DueTimer) -> None:
        if timer.purpose is TimerPurpose.SCHEDULE:
            # A schedule's tick: no run yet, it starts one. Without the schedules
            # (a poller built for runs only) the claim runs out for another worker.
            if self.schedules is not None:
                await self.schedules.fire(timer)
            return
        assert timer.run_id is not None  # every other purpose belongs to a run
        if timer.purpose is TimerPurpose.HEARTBEAT and not await self._lease_ran_out(timer.run_id, timer):
            return
        event = TimerFired(timer.key, timer.purpose, timer.seq, timer.attempt)
        try:
            outcome = await self.engine.apply(timer.run_id, event, guard=ConsumeTimer(timer.id))
        except RunNotFound:
            outcome = Rejection(f"run {timer.run_id} is gone")
        except UnknownWorkflow as exc:
            # A rolling deploy: the run is of a version this worker does not have.
            # Leave the timer; once its claim runs out, a newer worker fires it.
            log.warning("timer %s of run %s left for a newer worker: %s", timer.key, timer.run_id, exc)
            return
        if isinstance(outcome, Rejection):
            # Stale (the run moved on) or already fired: the row must go, or
            # it would be claimed again after every lease.
            log.debug("timer %s of run %s dropped: %s", timer.key, timer.run_id, outcome.reason)
            await self.store.drop_timer(timer.id)

    async def _lease_ran_out(self, run_id: str, timer: DueTimer) -> bool:
        """A heartbeat timer fires only for a lease that ran out, and only once per
        expiry. A lease renewed meanwhile moved the timer on already: leave it."""
        if timer.seq is None or timer.attempt is None:
            return True  # not one of ours; decide refuses it
        return await self.store.expire_lease(run_id, timer.seq, timer.attempt, self.clock.now())

    async def _sleep(self) -> None:
        # Reset the wake-up before reading the next due time: a timer committed
        # after the read sets the fresh event, one committed before is in the read.
        self._soonest = None
        self._wake = anyio.Event()
        next_at = await self.store.next_timer_at()
        delay = self.poll_interval
        if next_at is not None:
            delay = max(0.0, min(delay, next_at - self.clock.now()))
        with anyio.move_on_after(delay):
            await self._wake.wait()
