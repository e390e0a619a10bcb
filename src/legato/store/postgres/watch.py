"""The Postgres store's run-watch role: LISTEN on the channel migration 0014's
trigger notifies when a run's status changes."""

from __future__ import annotations

from collections.abc import Callable

from legato.machine.run import RunStatus
from legato.store.postgres.connection import PostgresConnection


class PostgresRunWatch(PostgresConnection):
    watches_every_process = True

    async def subscribe_runs(self, watch: Callable[[str, RunStatus], None]) -> None:
        if watch not in self._run_watchers:
            self._run_watchers.append(watch)
        await self._listen()

    async def unsubscribe_runs(self, watch: Callable[[str, RunStatus], None]) -> None:
        if watch in self._run_watchers:
            self._run_watchers.remove(watch)
