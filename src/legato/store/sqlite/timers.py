"""The SQLite store's timers role."""

from __future__ import annotations

from collections.abc import Callable

from legato.store.base import DueTimer
from legato.store.rows import due_timers
from legato.store.sqlite import sql as q
from legato.store.sqlite.connection import SqliteConnection


class SqliteTimers(SqliteConnection):
    async def claim_timers(self, now: float, lease: float, limit: int) -> list[DueTimer]:
        async with self._write() as db:
            cursor = await db.execute(q.CLAIM_TIMERS, (now + lease, now, now, limit))
            rows = await cursor.fetchall()
        return due_timers(rows)

    async def drop_timer(self, timer_id: int) -> None:
        async with self._write() as db:
            await db.execute(q.CONSUME_TIMER, (timer_id,))

    async def next_timer_at(self) -> float | None:
        rows = await self._read(q.NEXT_TIMER)
        value: float | None = rows[0][0] if rows else None
        return value

    async def subscribe_timers(self, wake: Callable[[float], None]) -> None:
        """In-process only: another process's timers are found by polling."""
        if wake not in self._timer_watchers:  # the poller calls this on every cycle
            self._timer_watchers.append(wake)
