"""The Postgres store's connections and schema: the lifecycle role, and the
state every other role's part shares (:class:`PostgresConnection`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import asyncpg

from legato.errors import StoreError
from legato.redact import redact
from legato.store.migrations import migrations
from legato.store.postgres import sql as q
from legato.store.postgres.batching import GroupCommit
from legato.store.postgres.rows import CONNECTION_LOST, connection_lost, init_connection, keep_session

if TYPE_CHECKING:
    from legato.store.postgres.rows import Conn

STATEMENT_TIMEOUT = 60.0
"""Seconds any one statement may take before it fails as an outage."""

_MIGRATION_LOCK = 0x1E6A70  # advisory lock id: one migrator at a time


def _outage(exc: BaseException) -> StoreError:
    return StoreError(f"Postgres cannot take this now ({type(exc).__name__}: {exc})")


class PostgresConnection:
    """One pool per process; codecs turn ``jsonb`` into Python values with orjson
    and ``timestamptz`` into epoch seconds, so rows map straight onto the core's
    values. All statements are prepared once per connection by asyncpg's cache."""

    def __init__(
        self,
        dsn: str,
        schema: str = "legato",
        min_size: int = 2,
        max_size: int = 10,
        application_name: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.min_size = min_size
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._users = 0
        self._batch = GroupCommit(self._conn)
        self._timer_watchers: list[Callable[[float], None]] = []
        self.timer_channel = f"{schema}_timers"
        # Tagged with the schema so that operators (and tests) can tell processes apart.
        self.application_name = (application_name or f"legato {schema}")[:63]

    async def open(self) -> None:
        """Connect; every open() is matched by a close(), the last one closes."""
        self._users += 1
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_size,
                max_size=self.max_size,
                init=init_connection,
                reset=keep_session,
                # Nothing legato runs takes this long; without a bound, a database
                # cut off by the network would hold a shielded commit -- and a
                # shutdown -- forever.
                command_timeout=STATEMENT_TIMEOUT,
                server_settings={"search_path": self.schema, "application_name": self.application_name},
            )
        except (TimeoutError, asyncpg.PostgresError, *CONNECTION_LOST) as exc:
            self._users -= 1
            raise StoreError(
                f"cannot connect to Postgres at {redact(self.dsn)}: {exc}; check LEGATO_DATABASE_URL"
            ) from exc

    async def close(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users:
            return
        if self._batch.unsent_deletions and self._pool is not None:
            with contextlib.suppress(StoreError, OSError, asyncpg.PostgresError):
                await self._batch.flush_outbox()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("the store is not open")
        return self._pool

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        try:
            async with self.pool.acquire() as conn:
                try:
                    yield conn
                except Exception as exc:
                    if isinstance(exc, asyncpg.exceptions.InternalClientError) and not conn.is_closed():
                        conn.terminate()  # its protocol state is unknown: never hand it out again
                    if connection_lost(exc, conn):
                        raise _outage(exc) from exc
                    raise
        except CONNECTION_LOST as exc:  # taking or giving back the connection
            raise _outage(exc) from exc

    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1")

    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self._conn() as conn, conn.transaction():
            # The lock first: workers starting together on an empty database would
            # otherwise race to create the schema (a unique violation in pg_namespace).
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute(q.CREATE_MIGRATIONS_TABLE)
            done = {row["number"] for row in await conn.fetch(q.APPLIED_MIGRATIONS)}
            for migration in migrations("postgres"):
                if migration.number in done:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(q.RECORD_MIGRATION, migration.number, migration.name)
                applied.append(migration.name)
        return applied
