"""Firing a schedule's timer: one transaction per firing.

The timer poller hands a schedule's due timer here. The firing reads the
schedule and whether its last run still runs, plans the firing (pure:
:func:`~legato.machine.schedules.plan_fire`), then writes it in one
transaction: the timer row taken (only one replica can), the tick's run
created with a key naming the schedule and the tick's nominal time, the
schedule's history lines and its next timer. A crash before the commit
leaves the timer, claimed again once its lease runs out; after it, the next
timer exists. So each tick starts one run, whatever the replicas and crashes.
"""

from __future__ import annotations

import contextlib
import logging

from legato.app import App
from legato.children import with_children
from legato.clock import Clock
from legato.engine import Engine
from legato.errors import RunNotFound
from legato.machine.commands import Decision
from legato.machine.decide import start_run
from legato.machine.events import CancelRequested
from legato.machine.schedules import FirePlan, ScheduleState, TickLine, plan_fire, tick_key
from legato.machine.vocabulary import TickOutcome
from legato.observe import AppliedInput, ScheduleFiredInput
from legato.store.base import DueTimer, Fired, ScheduleFiring, StoredSchedule
from legato.store.ports import RunStore, ScheduleStore
from legato.store.rows import new_run_id

log = logging.getLogger("legato.schedules")


class ScheduleFirer:
    def __init__(self, app: App, engine: Engine, store: ScheduleStore, runs: RunStore, clock: Clock) -> None:
        self.app = app
        self.engine = engine
        self.store = store
        self.runs = runs
        self.clock = clock

    async def fire(self, timer: DueTimer) -> None:
        """Fire the schedule's due timer (a no-op if another replica did)."""
        assert timer.schedule is not None
        stored = await self.store.get_schedule(timer.schedule)
        if stored is None or stored.paused:
            return  # deleted or paused meanwhile: its timer went with it
        if stored.workflow not in self.app.names():
            # A rolling deploy: leave the timer for a worker that has the workflow.
            log.warning("schedule %s left for a worker with workflow %s", stored.name, stored.workflow)
            return
        running = await self._running(stored.last_run_id)
        now = self.clock.now()
        state = ScheduleState(stored.name, stored.schedule, stored.next_tick, stored.buffered, running)
        plan = plan_fire(state, now)
        if plan.cancel_running and stored.last_run_id is not None:
            await self._cancel(stored, stored.last_run_id)
        firing = ScheduleFiring(
            name=stored.name,
            at=now,
            runs=tuple((n, self._first_decision(stored, n, now)) for n in plan.start),
            lines=plan.lines,
            timer_id=timer.id,
            next_tick=plan.next_tick,
            timer_at=plan.timer_at,
            buffered=plan.buffered,
        )
        fired = await self.store.fire_schedule(firing)
        if fired is None:
            log.debug("schedule %s: the tick was fired elsewhere", stored.name)
            return
        await self._announce(firing, fired)
        self.engine.observer.schedule_fired(
            ScheduleFiredInput(stored.name, stored.workflow, plan.lines, _lag(plan, now), plan.timer_at)
        )

    async def start_ticks(
        self, stored: StoredSchedule, nominals: list[float], outcome: TickOutcome
    ) -> Fired | None:
        """Start the runs of these ticks now (a trigger or a backfill); a tick
        whose run exists already (fired, or backfilled before) is not started again."""

        now = self.clock.now()
        firing = ScheduleFiring(
            name=stored.name,
            at=now,
            runs=tuple((n, self._first_decision(stored, n, now)) for n in nominals),
            lines=tuple(TickLine(outcome, n) for n in nominals),
        )
        fired = await self.store.fire_schedule(firing)
        if fired is not None:
            await self._announce(firing, fired)
        return fired

    def _first_decision(self, stored: StoredSchedule, nominal: float, now: float) -> Decision:
        workflow = self.app.workflow(stored.workflow)
        decision = start_run(
            workflow,
            new_run_id(),
            dict(stored.schedule.input),
            now,
            idempotency_key=f"{workflow.name}:{tick_key(stored.name, nominal)}",
        )
        return with_children(self.app, decision, now)

    async def _announce(self, firing: ScheduleFiring, fired: Fired) -> None:
        for (_, decision), created in zip(firing.runs, fired.created, strict=True):
            if created.created:
                self.engine.observer.applied(AppliedInput(decision, created=True))
                await self.engine.publish(created.outbox, created.run)

    async def _running(self, run_id: str | None) -> bool:
        if run_id is None:
            return False
        run = await self.runs.load_run(run_id)
        return run is not None and not run.finished

    async def _cancel(self, stored: StoredSchedule, run_id: str) -> None:
        # Before the new run's transaction: a crash in between leaves the timer,
        # and the next firing finds nothing running and starts the tick.
        event = CancelRequested(actor=f"schedule:{stored.name}", reason="overlap policy cancel_other")
        with contextlib.suppress(RunNotFound):  # gone (retention): nothing to cancel
            await self.engine.apply(run_id, event)


def _lag(plan: FirePlan, now: float) -> float | None:
    started = [line.nominal for line in plan.lines if line.outcome is TickOutcome.STARTED]
    return now - max(started) if started else None
