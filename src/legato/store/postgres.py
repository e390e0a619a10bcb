"""The Postgres store (asyncpg).

One pool per process; codecs turn ``jsonb`` into Python values with orjson and
``timestamptz`` into epoch seconds, so rows map straight onto the core's
values. All statements are prepared once per connection by asyncpg's cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from legato.errors import StoreError
from legato.machine.commands import CancelTimer, DeadLetter, Decision, ScheduleTimer
from legato.machine.run import Run
from legato.redact import redact
from legato.store import flow_postgres as flow
from legato.store import sql_postgres as q
from legato.store.base import (
    Applied,
    Conflict,
    ConsumeTimer,
    Created,
    DeadLetterGroup,
    DeadLetterRecord,
    DueTimer,
    Guard,
    GuardFailed,
    HistoryEntry,
    OutboxMessage,
    PoisonMessage,
    RunQuery,
)
from legato.store.migrations import migrations
from legato.store.postgres_batching import GroupCommit
from legato.store.postgres_rows import (
    CONNECTION_LOST,
    dead_letter_from_row,
    init_connection,
    keep_session,
    outbox_from_row,
    run_args,
    run_from_row,
    update_args,
)
from legato.store.rows import (
    dead_letter_body,
    dead_letter_headers,
    dead_letters,
    history_rows,
    task_bodies,
    timers_to_cancel,
    timers_to_schedule,
)

if TYPE_CHECKING:
    from legato.store.postgres_rows import Conn


def _plain(decision: Decision) -> bool:
    """True when the transition needs nothing beyond runs, history and task outbox rows."""
    return not any(isinstance(c, ScheduleTimer | CancelTimer | DeadLetter) for c in decision.commands)


STATEMENT_TIMEOUT = 60.0
"""Seconds any one statement may take before it fails as an outage."""

_MIGRATION_LOCK = 0x1E6A70  # advisory lock id: one migrator at a time


class _Abort(Exception):
    """Rolls a transaction back and carries the answer out of it."""

    def __init__(self, result: Conflict | GuardFailed) -> None:
        self.result = result


class PostgresStore:
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

    # -- lifecycle -----------------------------------------------------------

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
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
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
                await self.flush_outbox()
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
                yield conn
        except CONNECTION_LOST as exc:
            raise StoreError(f"Postgres cannot take this now ({type(exc).__name__}: {exc})") from exc

    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1")

    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self._conn() as conn, conn.transaction():
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(q.CREATE_MIGRATIONS_TABLE)
            done = {row["number"] for row in await conn.fetch(q.APPLIED_MIGRATIONS)}
            for migration in migrations("postgres"):
                if migration.number in done:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(q.RECORD_MIGRATION, migration.number, migration.name)
                applied.append(migration.name)
        return applied

    # -- runs ------------------------------------------------------------------

    async def create_run(self, decision: Decision, headers: Mapping[str, str] | None = None) -> Created:
        run = decision.run
        async with self._conn() as conn, conn.transaction():
            inserted = await conn.fetchval(q.INSERT_RUN, *run_args(run))
            if inserted is None:
                row = await conn.fetchrow(q.SELECT_RUN_BY_KEY, run.idempotency_key)
                assert row is not None
                return Created(run_from_row(row), False, ())
            outbox = await self._write_effects(conn, decision, headers)
        return Created(run, True, outbox)

    async def load_run(self, run_id: str) -> Run | None:
        return await self._batch.load(run_id)

    async def apply(
        self,
        decision: Decision,
        guard: Guard | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Applied | Conflict | GuardFailed:
        if guard is None and _plain(decision):
            return await self._batch.apply(decision, headers)
        run = decision.run
        try:
            async with self._conn() as conn, conn.transaction():
                # The run row first, then the guard's row: every transaction takes
                # its locks in that order (a transition that cancels a timer locks
                # the run, then the timer), so a timer firing and a transition
                # cancelling it cannot deadlock.
                status = await conn.execute(q.UPDATE_RUN, *update_args(run, decision.previous_version))
                if status != "UPDATE 1":
                    raise _Abort(Conflict())
                if guard is not None:
                    failure = await self._take_guard(conn, guard, run)
                    if failure is not None:
                        raise _Abort(failure)
                outbox = await self._write_effects(conn, decision, headers)
        except _Abort as abort:
            return abort.result
        return Applied(run, outbox)

    async def _take_guard(self, conn: Conn, guard: Guard, run: Run) -> GuardFailed | None:
        if isinstance(guard, ConsumeTimer):
            taken = await conn.fetchval(q.CONSUME_TIMER, guard.timer_id)
            reason = f"timer {guard.timer_id} already fired"
        else:
            taken = await conn.fetchval(
                q.RESOLVE_DEAD_LETTER, guard.dead_letter_id, run.updated_at, guard.actor
            )
            reason = f"dead letter {guard.dead_letter_id} is not open (already replayed?)"
        return GuardFailed(reason) if taken is None else None

    async def _write_effects(
        self, conn: Conn, decision: Decision, headers: Mapping[str, str] | None
    ) -> tuple[OutboxMessage, ...]:
        run = decision.run
        rows = history_rows(decision)
        if rows:
            await conn.execute(
                q.INSERT_HISTORY,
                run.id,
                run.version,
                [r.idx for r in rows],
                [r.kind for r in rows],
                [r.state for r in rows],
                [r.attempt for r in rows],
                [r.at for r in rows],
                [r.actor for r in rows],
                [r.detail for r in rows],
            )
        cancelled = timers_to_cancel(decision)
        if cancelled:
            await conn.execute(q.DELETE_TIMERS, run.id, cancelled)
        scheduled = timers_to_schedule(decision)
        for timer in scheduled:
            await conn.execute(
                q.UPSERT_TIMER,
                run.id,
                timer.key,
                timer.purpose,
                timer.seq,
                timer.attempt,
                timer.fire_at,
            )
        if scheduled:
            await conn.execute(q.NOTIFY, self.timer_channel, str(min(t.fire_at for t in scheduled)))

        kinds: list[str] = []
        bodies: list[bytes] = []
        priorities: list[int] = []
        header_list: list[Any] = []
        task_headers = dict(headers or {})
        for body, priority in task_bodies(decision):
            kinds.append("task")
            bodies.append(body)
            priorities.append(priority)
            header_list.append(task_headers)
        for letter in dead_letters(decision):
            letter_id = await conn.fetchval(
                q.INSERT_STEP_DEAD_LETTER,
                run.id,
                run.workflow,
                letter.state,
                letter.seq,
                letter.attempt,
                letter.kind.value,
                letter.reason,
                letter.error.to_json(),
                letter.attempts,
                run.updated_at,
            )
            kinds.append("dead_letter")
            bodies.append(dead_letter_body(run, letter, letter_id))
            priorities.append(run.priority)
            header_list.append({**task_headers, **dead_letter_headers(letter)})
        if not kinds:
            return ()
        records = await conn.fetch(
            q.INSERT_OUTBOX, run.id, kinds, bodies, priorities, header_list, run.updated_at
        )
        return tuple(outbox_from_row(r) for r in records)

    async def record_rejection(self, run: Run, event: str, reason: str, at: float) -> None:
        async with self._conn() as conn:
            await conn.execute(
                q.INSERT_REJECTION, run.id, run.version, at, {"event": event, "reason": reason}
            )

    async def list_runs(self, query: RunQuery) -> list[Run]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                q.LIST_RUNS,
                query.status.value if query.status else None,
                query.workflow,
                query.before,
                query.limit,
            )
        return [run_from_row(row) for row in rows]

    async def history(self, run_id: str) -> list[HistoryEntry]:
        async with self._conn() as conn:
            try:
                rows = await conn.fetch(q.SELECT_HISTORY, run_id)
            except asyncpg.exceptions.DataError:
                return []
        return [
            HistoryEntry(
                run_id=r["run_id"],
                version=r["version"],
                idx=r["idx"],
                kind=r["kind"],
                at=r["at"],
                state=r["state"],
                attempt=r["attempt"],
                actor=r["actor"],
                detail=r["detail"],
            )
            for r in rows
        ]

    # -- outbox and timers -------------------------------------------------------

    async def claim_outbox(
        self, older_than: float, now: float, lease: float, limit: int
    ) -> list[OutboxMessage]:
        await self.flush_outbox()  # never hand out what this process already published
        async with self._conn() as conn:
            rows = await conn.fetch(q.CLAIM_OUTBOX, older_than, now, now + lease, limit)
        return [outbox_from_row(r) for r in rows]

    async def outbox_done(self, ids: Sequence[int]) -> None:
        """Forget published outbox rows (deferred: see :class:`GroupCommit`)."""
        await self._batch.forget(ids)

    async def claim_outbox_rows(self, ids: Sequence[int], until: float) -> None:
        if ids:
            async with self._conn() as conn:
                await conn.execute(q.CLAIM_OUTBOX_ROWS, list(ids), until)

    async def flush_outbox(self) -> None:
        await self._batch.flush_outbox()

    async def claim_timers(self, now: float, lease: float, limit: int) -> list[DueTimer]:
        async with self._conn() as conn:
            rows = await conn.fetch(q.CLAIM_TIMERS, now, now + lease, limit)
        return [
            DueTimer(r["id"], r["run_id"], r["key"], r["purpose"], r["seq"], r["attempt"], r["fire_at"])
            for r in rows
        ]

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
            await listener.add_listener(self.timer_channel, self._on_notify)
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

    # -- dead letters ------------------------------------------------------------

    async def record_poison(self, poison: PoisonMessage, at: float) -> int:
        message = {
            "queue": poison.queue,
            "routing_key": poison.routing_key,
            "message_id": poison.message_id,
            "headers": dict(poison.headers),
            "body": poison.body.decode("utf-8", "replace"),
        }
        async with self._conn() as conn:
            dead_letter_id: int = await conn.fetchval(
                q.INSERT_POISON, poison.reason, at, message, poison.fingerprint
            )
        return dead_letter_id

    async def list_dead_letters(
        self, workflow: str | None = None, status: str | None = "open", limit: int = 100
    ) -> list[DeadLetterRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(q.LIST_DEAD_LETTERS, workflow, status, limit)
        return [dead_letter_from_row(r) for r in rows]

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(q.GET_DEAD_LETTER, dead_letter_id)
        return dead_letter_from_row(row) if row is not None else None

    async def group_dead_letters(
        self, by: str, workflow: str | None = None, status: str | None = "open"
    ) -> list[DeadLetterGroup]:
        column = q.DEAD_LETTER_GROUP_COLUMNS[by]
        async with self._conn() as conn:
            rows = await conn.fetch(q.GROUP_DEAD_LETTERS.format(column=column), workflow, status)
        return [
            DeadLetterGroup(
                r["key"],
                r["count"],
                r["first_seen"],
                r["last_seen"],
                r["sample_error"] or "",
                r["sample_id"],
            )
            for r in rows
        ]

    async def resolve_dead_letter(self, dead_letter_id: int, actor: str, at: float) -> bool:
        async with self._conn() as conn:
            return await conn.fetchval(q.RESOLVE_DEAD_LETTER, dead_letter_id, at, actor) is not None

    async def reopen_dead_letter(self, dead_letter_id: int) -> None:
        async with self._conn() as conn:
            await conn.execute(q.REOPEN_DEAD_LETTER, dead_letter_id)

    async def purge_dead_letters(self, older_than: float | None) -> int:
        async with self._conn() as conn:
            status = await conn.execute(q.PURGE_DEAD_LETTERS, older_than)
        return int(status.split()[-1])

    # -- flow control (legato.store.flow_postgres) -----------------------------------

    async def reserve_tokens(
        self, bucket: str, count: int, rate: float, capacity: float, now: float
    ) -> float:
        async with self._conn() as conn:
            return await flow.reserve_tokens(conn, bucket, count, rate, capacity, now)

    async def acquire_slot(
        self, bucket: str, limit: int, holder: str, now: float, lease: float
    ) -> int | None:
        async with self._conn() as conn:
            return await flow.acquire_slot(conn, bucket, limit, holder, now, lease)

    async def release_slot(self, bucket: str, slot: int, holder: str) -> None:
        async with self._conn() as conn:
            await flow.release_slot(conn, bucket, slot, holder)

    async def renew_slots(
        self, holder: str, slots: Sequence[tuple[str, int]], now: float
    ) -> list[tuple[str, int]]:
        async with self._conn() as conn:
            return await flow.renew_slots(conn, holder, slots, now)

    async def slots_in_use(self, bucket: str, now: float) -> tuple[int, float | None]:
        async with self._conn() as conn:
            return await flow.slots_in_use(conn, bucket, now)

    async def purge_flow_state(self, now: float) -> int:
        async with self._conn() as conn:
            return await flow.purge_flow_state(conn, now)
