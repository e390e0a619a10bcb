"""The Postgres store's timers role: due timers, and NOTIFY for the pollers."""

from __future__ import annotations

from collections.abc import Callable

from legato.store.base import DueTimer
from legato.store.postgres import sql as q
from legato.store.postgres.connection import PostgresConnection
from legato.store.rows import due_timers


class PostgresTimers(PostgresConnection):
    async def claim_timers(self, now: float, lease: float, limit: int) -> list[DueTimer]:
        async with self._conn() as conn:
            rows = await conn.fetch(q.CLAIM_TIMERS, now, now + lease, limit)
        return due_timers(rows)

    async def drop_timer(self, timer_id: int) -> None:
        async with self._conn() as conn:
            await conn.execute(q.CONSUME_TIMER, timer_id)

    async def next_timer_at(self) -> float | None:
        async with self._conn() as conn:
            value: float | None = await conn.fetchval(q.NEXT_TIMER)
        return value

    async def subscribe_timers(self, wake: Callable[[float], None]) -> None:
        """Call ``wake(fire_at)`` whenever any process schedules a timer."""
        if wake not in self._timer_watchers:
            self._timer_watchers.append(wake)
        await self._listen()
