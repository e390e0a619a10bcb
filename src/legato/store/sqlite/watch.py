"""The SQLite store's run-watch role: in-process only.

SQLite cannot tell another process anything; the transitions this process
commits tell its own watchers (``SqliteRuns``), and a watcher in another
process finds the change by reading, as before.
"""

from __future__ import annotations

from collections.abc import Callable

from legato.machine.run import RunStatus
from legato.store.sqlite.connection import SqliteConnection


class SqliteRunWatch(SqliteConnection):
    watches_every_process = False

    async def subscribe_runs(self, watch: Callable[[str, RunStatus], None]) -> None:
        if watch not in self._run_watchers:
            self._run_watchers.append(watch)

    async def unsubscribe_runs(self, watch: Callable[[str, RunStatus], None]) -> None:
        if watch in self._run_watchers:
            self._run_watchers.remove(watch)
