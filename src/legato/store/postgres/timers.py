"""The Postgres store's timers role: due timers, and NOTIFY for the pollers."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from legato.errors import StoreError
from legato.store.base import DueTimer
from legato.store.postgres import sql as q
from legato.store.postgres.connection import PostgresConnection
from legato.store.postgres.rows import CONNECTION_LOST
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
        listener = self._listener
        if listener is not None and not listener.is_closed():
            return
        # First call, or the listener died with its server (a restart): the timer
        # poller calls again after its outage backoff, and this reconnects.
        self._listener = None
        try:
            listener = await asyncpg.connect(
                self.dsn,
                server_settings={"search_path": self.schema, "application_name": self.application_name},
            )
            try:
                await listener.add_listener(self.timer_channel, self._on_notify)
            except BaseException:
                # Cancelled (a worker stopping as it starts) or failed: nobody else holds it.
                listener.terminate()
                raise
        except CONNECTION_LOST as exc:
            raise StoreError(f"cannot open the timer listener: {exc}") from exc
        except asyncpg.PostgresError as exc:
            raise StoreError(f"cannot open the timer listener: {exc}") from exc
        self._listener = listener

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            fire_at = float(str(payload))
        except (ValueError, TypeError):
            return
        for wake in self._timer_watchers:
            wake(fire_at)
