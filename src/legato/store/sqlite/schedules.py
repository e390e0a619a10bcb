"""The SQLite store's schedules role: schedules, their history, and a firing
written in one transaction (the timer taken, the runs, the next timer)."""

from __future__ import annotations

from collections.abc import Mapping

from legato.machine.schedules import schedule_to_json
from legato.machine.vocabulary import TimerPurpose
from legato.store.base import Created, Fired, ScheduleFiring, StoredSchedule, TickRecord
from legato.store.effects import Effects
from legato.store.schedule_rows import last_run, stored_schedule, tick_record, tick_rows
from legato.store.sqlite import sql as q
from legato.store.sqlite.connection import dumps, loads
from legato.store.sqlite.runs import SqliteRuns


class SqliteSchedules(SqliteRuns):
    async def save_schedule(self, schedule: StoredSchedule, timer_at: float | None) -> None:
        async with self._write() as db:
            await db.execute(
                q.UPSERT_SCHEDULE,
                (
                    schedule.name,
                    schedule.workflow,
                    dumps(schedule_to_json(schedule.schedule)),
                    dumps(dict(schedule.schedule.input)),
                    schedule.source.value,
                    int(schedule.paused),
                    schedule.next_tick,
                    schedule.buffered,
                    schedule.created_at,
                    schedule.updated_at,
                ),
            )
            await db.execute(q.DELETE_SCHEDULE_TIMER, (schedule.name,))
            if timer_at is not None:
                await db.execute(q.INSERT_SCHEDULE_TIMER, (schedule.name, TimerPurpose.SCHEDULE, timer_at))
        if timer_at is not None:
            self._wake_at(timer_at)

    async def get_schedule(self, name: str) -> StoredSchedule | None:
        rows = await self._read(q.SELECT_SCHEDULES, name, None)
        return stored_schedule(rows[0], loads(rows[0]["spec"]), loads(rows[0]["input"])) if rows else None

    async def list_schedules(self, workflow: str | None = None) -> list[StoredSchedule]:
        rows = await self._read(q.SELECT_SCHEDULES, None, workflow)
        return [stored_schedule(r, loads(r["spec"]), loads(r["input"])) for r in rows]

    async def delete_schedule(self, name: str) -> bool:
        async with self._write() as db:
            cursor = await db.execute(q.DELETE_SCHEDULE, (name,))
        return cursor.rowcount == 1

    async def fire_schedule(
        self, firing: ScheduleFiring, headers: Mapping[str, str] | None = None
    ) -> Fired | None:
        found: list[Effects] = []
        async with self._write() as db:
            if firing.timer_id is not None:
                cursor = await db.execute(q.CONSUME_TIMER, (firing.timer_id,))
                if cursor.rowcount != 1:
                    return None
            created: list[Created] = []
            for _, decision in firing.runs:
                one, effects = await self._create_in(db, decision, headers)
                created.append(one)
                found.append(effects)
            await db.executemany(
                q.INSERT_SCHEDULE_TICK,
                [(firing.name, *line, firing.at) for line in tick_rows(firing, created)],
            )
            if firing.timer_id is None:
                await db.execute(q.UPDATE_SCHEDULE_LAST_RUN, (firing.name, last_run(created)))
            else:
                await db.execute(
                    q.UPDATE_SCHEDULE_TICK,
                    (firing.name, firing.next_tick, firing.buffered, firing.at, last_run(created)),
                )
                await db.execute(
                    q.INSERT_SCHEDULE_TIMER, (firing.name, TimerPurpose.SCHEDULE, firing.timer_at)
                )
        for effects in found:
            self._wake_timers(effects)
        if firing.timer_id is not None:
            self._wake_at(firing.timer_at)
        return Fired(tuple(created))

    async def schedule_ticks(self, name: str, limit: int = 50) -> list[TickRecord]:
        rows = await self._read(q.SELECT_SCHEDULE_TICKS, name, limit)
        return [tick_record(r) for r in rows]

    def _wake_at(self, fire_at: float) -> None:
        for wake in self._timer_watchers:
            wake(fire_at)
