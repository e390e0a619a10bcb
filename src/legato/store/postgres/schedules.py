"""The Postgres store's schedules role: schedules, their history, and a firing
written in one transaction (the timer taken, the runs, the next timer)."""

from __future__ import annotations

from collections.abc import Mapping

from legato.machine.schedules import schedule_to_json
from legato.machine.vocabulary import TimerPurpose
from legato.store.base import Created, Fired, ScheduleFiring, StoredSchedule, TickRecord
from legato.store.postgres import sql as q
from legato.store.postgres.runs import PostgresRuns
from legato.store.schedule_rows import last_run, stored_schedule, tick_record, tick_rows


class PostgresSchedules(PostgresRuns):
    async def save_schedule(self, schedule: StoredSchedule, timer_at: float | None) -> None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                q.UPSERT_SCHEDULE,
                schedule.name,
                schedule.workflow,
                schedule_to_json(schedule.schedule),
                dict(schedule.schedule.input),
                schedule.source.value,
                schedule.paused,
                schedule.next_tick,
                schedule.buffered,
                schedule.created_at,
                schedule.updated_at,
            )
            await conn.execute(q.DELETE_SCHEDULE_TIMER, schedule.name)
            if timer_at is not None:
                await conn.execute(q.INSERT_SCHEDULE_TIMER, schedule.name, TimerPurpose.SCHEDULE, timer_at)
                await conn.execute(q.NOTIFY, self.timer_channel, str(timer_at))

    async def get_schedule(self, name: str) -> StoredSchedule | None:
        async with self._conn() as conn:
            rows = await conn.fetch(q.SELECT_SCHEDULES, name, None)
        return stored_schedule(rows[0], rows[0]["spec"], rows[0]["input"]) if rows else None

    async def list_schedules(self, workflow: str | None = None) -> list[StoredSchedule]:
        async with self._conn() as conn:
            rows = await conn.fetch(q.SELECT_SCHEDULES, None, workflow)
        return [stored_schedule(r, r["spec"], r["input"]) for r in rows]

    async def delete_schedule(self, name: str) -> bool:
        async with self._conn() as conn:
            deleted = await conn.fetchval(q.DELETE_SCHEDULE, name)
        return deleted is not None

    async def fire_schedule(
        self, firing: ScheduleFiring, headers: Mapping[str, str] | None = None
    ) -> Fired | None:
        async with self._conn() as conn, conn.transaction():
            # The schedule's row first, as save_schedule takes it (its upsert), then
            # the timer: a firing and an operator's pause cannot deadlock.
            await conn.execute(q.LOCK_SCHEDULE, firing.name)
            if firing.timer_id is not None:
                taken = await conn.fetchval(q.CONSUME_TIMER, firing.timer_id)
                if taken is None:
                    return None
            created: list[Created] = [await self._create_in(conn, d, headers) for _, d in firing.runs]
            lines = tick_rows(firing, created)
            if lines:
                outcomes, nominals, counts, runs = zip(*lines, strict=True)
                await conn.execute(
                    q.INSERT_SCHEDULE_TICKS, firing.name, firing.at, outcomes, nominals, counts, runs
                )
            if firing.timer_id is None:
                await conn.execute(q.UPDATE_SCHEDULE_LAST_RUN, firing.name, last_run(created))
            else:
                await conn.execute(
                    q.UPDATE_SCHEDULE_TICK,
                    firing.name,
                    firing.next_tick,
                    firing.buffered,
                    firing.at,
                    last_run(created),
                )
                await conn.execute(
                    q.INSERT_SCHEDULE_TIMER, firing.name, TimerPurpose.SCHEDULE, firing.timer_at
                )
                await conn.execute(q.NOTIFY, self.timer_channel, str(firing.timer_at))
        return Fired(tuple(created))

    async def schedule_ticks(self, name: str, limit: int = 50) -> list[TickRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(q.SELECT_SCHEDULE_TICKS, name, limit)
        return [tick_record(r) for r in rows]
