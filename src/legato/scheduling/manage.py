"""Managing schedules: the code's reconciled on worker start, the rest created,
changed, paused, triggered and backfilled at run time (CLI, client, dashboard)."""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Protocol

from legato.app import App
from legato.clock import Clock
from legato.engine import Engine
from legato.errors import DefinitionError, LegatoError
from legato.machine.schedules import Schedule, first_tick, jitter_for, schedule_problems, ticks_between
from legato.machine.vocabulary import TickOutcome
from legato.scheduling.fire import ScheduleFirer
from legato.store.base import Fired, ScheduleSource, StoredSchedule, TickRecord
from legato.store.ports import RunStore, ScheduleStore


class SchedulingStore(ScheduleStore, RunStore, Protocol):
    """What managing schedules takes: the schedules, and the runs they start."""


class ScheduleNotFound(LegatoError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r} (legato schedule list shows them)")


class Reconciled(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class Schedules:
    def __init__(self, app: App, engine: Engine, store: SchedulingStore, clock: Clock) -> None:
        self.app = app
        self.store = store
        self.clock = clock
        self.firer = ScheduleFirer(app, engine, store, store, clock)

    async def reconcile(self) -> dict[str, Reconciled]:
        """Create or update the schedules declared in the app's code (never twice:
        a schedule's name is its key). A paused schedule stays paused."""
        done: dict[str, Reconciled] = {}
        for workflow in self.app.workflows():
            for schedule in workflow.schedules:
                named = _named(workflow.name, schedule)
                done[named.name or ""] = await self._save(workflow.name, named, ScheduleSource.CODE)
        return done

    async def all(self, workflow: str | None = None) -> list[StoredSchedule]:
        return await self.store.list_schedules(workflow)

    async def get(self, name: str) -> StoredSchedule:
        found = await self.store.get_schedule(name)
        if found is None:
            raise ScheduleNotFound(name)
        return found

    async def ticks(self, name: str, limit: int = 50) -> list[TickRecord]:
        return await self.store.schedule_ticks(name, limit)

    async def create(self, workflow: str, schedule: Schedule) -> StoredSchedule:
        self.app.workflow(workflow)
        named = _named(workflow, schedule)
        _check(workflow, named)
        assert named.name is not None
        if await self.store.get_schedule(named.name) is not None:
            raise LegatoError(f"schedule {named.name!r} exists: update it, or delete it first")
        await self._save(workflow, named, ScheduleSource.RUNTIME)
        return await self.get(named.name)

    async def update(self, name: str, schedule: Schedule) -> StoredSchedule:
        """Replace a schedule's times and options (keeps its name, workflow and pause)."""
        current = await self.get(name)
        named = dataclasses.replace(schedule, name=name)
        _check(current.workflow, named)
        await self._save(current.workflow, named, current.source)
        return await self.get(name)

    async def pause(self, name: str) -> StoredSchedule:
        current = await self.get(name)
        paused = dataclasses.replace(current, paused=True, updated_at=self.clock.now())
        await self.store.save_schedule(paused, None)
        return await self.get(name)

    async def resume(self, name: str) -> StoredSchedule:
        """Resume from now: ticks that fell while paused are not caught up."""
        current = await self.get(name)
        now = self.clock.now()
        tick = first_tick(current.schedule, now)
        resumed = dataclasses.replace(current, paused=False, next_tick=tick, buffered=None, updated_at=now)
        await self.store.save_schedule(resumed, _timer_at(resumed))
        return await self.get(name)

    async def delete(self, name: str) -> None:
        if not await self.store.delete_schedule(name):
            raise ScheduleNotFound(name)

    async def trigger(self, name: str) -> Fired | None:
        """Start one run now, outside the clock's ticks (its key names this instant)."""
        current = await self.get(name)
        return await self.firer.start_ticks(current, [self.clock.now()], TickOutcome.TRIGGERED)

    async def backfill(self, name: str, start: float, end: float) -> Fired | None:
        """Start the runs of the ticks in ``[start, end]``; a tick that already
        has its run (fired, or backfilled before) is not started twice."""
        current = await self.get(name)
        return await self.firer.start_ticks(
            current, ticks_between(current.schedule, start, end), TickOutcome.TRIGGERED
        )

    async def _save(self, workflow: str, schedule: Schedule, source: ScheduleSource) -> Reconciled:
        assert schedule.name is not None
        now = self.clock.now()
        current = await self.store.get_schedule(schedule.name)
        if current is not None and current.workflow == workflow and current.schedule == schedule:
            return Reconciled.UNCHANGED
        tick = first_tick(schedule, now)
        paused = current.paused if current is not None else False
        stored = StoredSchedule(
            workflow=workflow,
            schedule=schedule,
            source=source,
            paused=paused,
            next_tick=tick,
            created_at=current.created_at if current is not None else now,
            updated_at=now,
        )
        await self.store.save_schedule(stored, None if paused else _timer_at(stored))
        return Reconciled.CREATED if current is None else Reconciled.UPDATED


def _named(workflow: str, schedule: Schedule) -> Schedule:
    return schedule if schedule.name else dataclasses.replace(schedule, name=workflow)


def _check(workflow: str, schedule: Schedule) -> None:
    for name, problem in schedule_problems(workflow, (schedule,)):
        raise DefinitionError(workflow, None, f"schedule {name!r}: {problem}")


def _timer_at(stored: StoredSchedule) -> float:
    return stored.next_tick + jitter_for(stored.name, stored.next_tick, stored.schedule.jitter)
