"""The Postgres store's connections and schema: the lifecycle role, and the
state every other role's part shares (:class:`PostgresConnection`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import anyio
import asyncpg

from legato.errors import SchemaMissing, StoreError
from legato.identifiers import check_schema, quote_ident
from legato.machine.run import RunStatus
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


_NOT_MIGRATED = (asyncpg.UndefinedTableError, asyncpg.UndefinedFunctionError, asyncpg.InvalidSchemaNameError)
"""What a statement meets on a database that ``legato migrate`` never ran on
(the schema is then not on the ``search_path``, so none of its tables are found)."""


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
        self.schema = check_schema(schema)
        self.min_size = min_size
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._listen_lock = anyio.Lock()
        self._users = 0
        self._batch = GroupCommit(self._conn)
        self._timer_watchers: list[Callable[[float], None]] = []
        self._run_watchers: list[Callable[[str, RunStatus], None]] = []
        self.timer_channel = f"{schema}_timers"
        self.runs_channel = f"{schema}_runs"  # migration 0014's trigger
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

    async def _listen(self) -> None:
        """Have the one listening connection of this process, on every channel.

        Opened on first use, and again when it died with its server: its users
        (the timer poller, the run watchers) call again after an outage.
        """
        listener = self._listener
        if listener is not None and not listener.is_closed():
            return
        async with self._listen_lock:  # many waiters may ask at once; connect once
            if self._listener is not None and not self._listener.is_closed():
                return
            await self._connect_listener()

    async def _connect_listener(self) -> None:
        self._listener = None
        try:
            listener = await asyncpg.connect(
                self.dsn,
                server_settings={"search_path": self.schema, "application_name": self.application_name},
            )
        except CONNECTION_LOST as exc:
            raise StoreError(f"cannot open the listener: {exc}") from exc
        except asyncpg.PostgresError as exc:
            raise StoreError(f"cannot open the listener: {exc}") from exc
        try:
            await listener.add_listener(self.timer_channel, self._on_timer_notify)
            await listener.add_listener(self.runs_channel, self._on_run_notify)
        except BaseException as exc:
            # Cancelled (a worker stopping) or cut off: this connection is nobody's.
            with anyio.CancelScope(shield=True):
                await listener.close(timeout=5)
            if isinstance(exc, (*CONNECTION_LOST, asyncpg.PostgresError)):
                raise StoreError(f"cannot open the listener: {exc}") from exc
            raise
        if self._pool is None:  # closed while it connected
            await listener.close(timeout=5)
            return
        self._listener = listener

    def _on_timer_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        try:
            fire_at = float(str(payload))
        except (ValueError, TypeError):
            return
        for wake in self._timer_watchers:
            wake(fire_at)

    def _on_run_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        run_id, _, status = str(payload).partition(" ")
        try:
            changed = RunStatus(status)
        except ValueError:
            return
        for watch in list(self._run_watchers):
            watch(run_id, changed)

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
                    if isinstance(exc, _NOT_MIGRATED):
                        raise self._schema_missing(exc) from exc
                    raise
        except CONNECTION_LOST as exc:  # taking or giving back the connection
            raise _outage(exc) from exc

    def connection(self) -> contextlib.AbstractAsyncContextManager[Conn]:
        """A pooled connection whose errors are legato's (outage, missing schema)."""
        return self._conn()

    def _schema_missing(self, exc: BaseException) -> SchemaMissing:
        return SchemaMissing(
            f"the database at {redact(self.dsn)} (schema {self.schema!r}) has no legato schema; "
            f"run `legato migrate` ({exc})"
        )

    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1")

    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self._conn() as conn, conn.transaction():
            # The lock first: workers starting together on an empty database would
            # otherwise race to create the schema (a unique violation in pg_namespace).
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}")
            await conn.execute(q.CREATE_MIGRATIONS_TABLE)
            done = {row["number"] for row in await conn.fetch(q.APPLIED_MIGRATIONS)}
            for migration in migrations("postgres"):
                if migration.number in done:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(q.RECORD_MIGRATION, migration.number, migration.name)
                applied.append(migration.name)
        return applied
