"""The Postgres store (asyncpg).

One pool per process; codecs turn ``jsonb`` into Python values with orjson and
``timestamptz`` into epoch seconds, so rows map straight onto the core's
values. All statements are prepared once per connection by asyncpg's cache.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import asyncpg
import orjson

from legato.errors import StoreError
from legato.machine.commands import CancelTimer, DeadLetter, Decision, ScheduleTimer
from legato.machine.errors import ErrorInfo
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
from legato.store.rows import (
    Row,
    dead_letter_body,
    dead_letter_headers,
    dead_letters,
    history_rows,
    run_from_columns,
    task_bodies,
    timers_to_cancel,
    timers_to_schedule,
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = PoolConnectionProxy[asyncpg.Record]  # generic in the stubs only

_PG_EPOCH = 946684800.0  # 2000-01-01T00:00:00Z, where Postgres counts time from
_MIGRATION_LOCK = 0x1E6A70  # advisory lock id: one migrator at a time


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


def _encode_ts(value: float) -> tuple[int]:
    return (round((value - _PG_EPOCH) * 1_000_000),)


def _decode_ts(value: tuple[int]) -> float:
    return value[0] / 1_000_000 + _PG_EPOCH


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "timestamptz", encoder=_encode_ts, decoder=_decode_ts, schema="pg_catalog", format="tuple"
    )
    await conn.set_type_codec("uuid", encoder=str, decoder=str, schema="pg_catalog", format="text")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection given back to it.

    asyncpg's default reset costs a round trip on every release. legato leaves no
    session state behind -- transactions are managed (``async with``), advisory
    locks are transaction-scoped, LISTEN has a connection of its own -- so only a
    transaction left open by accident needs undoing.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


_CONNECTION_LOST = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,  # class 08: the connection broke
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, restart, terminated backend
    asyncpg.exceptions.InterfaceError,  # "connection is closed" on a pooled connection
)
"""Errors that mean "the database went away", not "the statement was wrong"."""

_SENT_FLUSH_AT = 1000
"""Published outbox ids kept for the next statement before a flush of their own."""


def _plain(decision: Decision) -> bool:
    """True when the transition needs nothing beyond runs, history and task outbox rows."""
    return not any(isinstance(c, ScheduleTimer | CancelTimer | DeadLetter) for c in decision.commands)


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
        self._sent: list[int] = []
        self._queue: list[_Pending] = []
        self._flush_lock = anyio.Lock(fast_acquire=True)
        self._loads: list[_Load] = []
        self._load_lock = anyio.Lock(fast_acquire=True)
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
                init=_init_connection,
                reset=_keep_session,
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
        if self._sent and self._pool is not None:
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
        except _CONNECTION_LOST as exc:
            raise StoreError(f"lost the connection to Postgres: {exc}") from exc

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
            inserted = await conn.fetchval(q.INSERT_RUN, *_run_args(run))
            if inserted is None:
                row = await conn.fetchrow(q.SELECT_RUN_BY_KEY, run.idempotency_key)
                assert row is not None
                return Created(_run(row), False, ())
            outbox = await self._write_effects(conn, decision, headers)
        return Created(run, True, outbox)

    async def load_run(self, run_id: str) -> Run | None:
        """Read a run; reads made at the same moment share one statement
        (the same flush-lock pattern as the group commit)."""
        try:
            uuid.UUID(run_id)
        except ValueError:
            return None  # not a uuid: no such run (and it must not spoil a batch)
        pending = _Load(run_id)
        self._loads.append(pending)
        try:
            async with self._load_lock:
                if not pending.done:
                    batch, self._loads = self._loads[:_BATCH_MAX], self._loads[_BATCH_MAX:]
                    with anyio.CancelScope(shield=True):  # others wait on this batch
                        await self._read_runs(batch)
        except BaseException:
            if pending in self._loads:
                self._loads.remove(pending)
            raise
        if pending.error is not None:
            raise pending.error
        return pending.run

    async def _read_runs(self, batch: list[_Load]) -> None:
        try:
            async with self._conn() as conn:
                rows = await conn.fetch(q.SELECT_RUNS, list({p.run_id for p in batch}))
        except BaseException as exc:
            for pending in batch:
                pending.error, pending.done = exc, True
            raise
        found = {row["id"]: row for row in rows}
        for pending in batch:
            row = found.get(pending.run_id)
            pending.run = _run(row) if row is not None else None
            pending.done = True

    async def apply(
        self,
        decision: Decision,
        guard: Guard | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Applied | Conflict | GuardFailed:
        if guard is None and _plain(decision):
            return await self._apply_fast(decision, headers)
        run = decision.run
        try:
            async with self._conn() as conn, conn.transaction():
                if guard is not None:
                    failure = await self._take_guard(conn, guard, run)
                    if failure is not None:
                        raise _Abort(failure)
                status = await conn.execute(q.UPDATE_RUN, *_update_args(run, decision.previous_version))
                if status != "UPDATE 1":
                    raise _Abort(Conflict())
                outbox = await self._write_effects(conn, decision, headers)
        except _Abort as abort:
            return abort.result
        return Applied(run, outbox)

    async def _apply_fast(self, decision: Decision, headers: Mapping[str, str] | None) -> Applied | Conflict:
        """The common transition, group-committed with those of other steps.

        No timer and no delay: whoever holds the flush lock commits everything
        queued so far in one statement. While that statement runs, new
        transitions queue up and go together in the next one, so a busy worker
        commits many per round trip and an idle one still commits each at once.
        """
        pending = _Pending(decision, headers)
        self._queue.append(pending)
        try:
            async with self._flush_lock:
                if pending.result is None:
                    batch = self._take_batch()
                    with anyio.CancelScope(shield=True):  # others wait on this batch
                        await self._flush(batch)
        except BaseException:
            if pending in self._queue:
                self._queue.remove(pending)
            raise
        if isinstance(pending.result, BaseException):
            raise pending.result
        assert pending.result is not None
        return pending.result

    def _take_batch(self) -> list[_Pending]:
        """Queued transitions, oldest first, at most one per run: a second
        decision on a run waits for the next batch, where it meets a conflict
        and is decided again."""
        batch: list[_Pending] = []
        seen: set[str] = set()
        left: list[_Pending] = []
        for pending in self._queue:
            run_id = pending.decision.run.id
            if run_id in seen or len(batch) >= _BATCH_MAX:
                left.append(pending)
            else:
                seen.add(run_id)
                batch.append(pending)
        self._queue = left
        return batch

    async def _flush(self, batch: list[_Pending]) -> None:
        runs: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        outbox: list[tuple[Any, ...]] = []
        for pending in batch:
            run = pending.decision.run
            runs.append(_run_document(run, pending.decision.previous_version))
            for row in history_rows(pending.decision):
                history.append(
                    {
                        "run_id": run.id,
                        "version": run.version,
                        "idx": row.idx,
                        "kind": row.kind,
                        "state": row.state,
                        "attempt": row.attempt,
                        "at": row.at,
                        "actor": row.actor,
                        "detail": row.detail,
                    }
                )
            headers = dict(pending.headers or {})
            for body, priority in task_bodies(pending.decision):
                outbox.append((run.id, "task", body, priority, headers, run.updated_at))
        sent, self._sent = self._sent, []
        try:
            async with self._conn() as conn:
                records = await conn.fetch(q.APPLY_BATCH, runs, history, *_columns(outbox, 6), sent)
        except BaseException as exc:
            self._sent = sent + self._sent  # not deleted: try again with the next statement
            for pending in batch:
                pending.result = exc
            raise
        updated = {r["run_id"] for r in records if r["what"] == "run"}
        rows: dict[str, list[OutboxMessage]] = {}
        for record in records:
            if record["what"] == "outbox":
                rows.setdefault(record["run_id"], []).append(_outbox(record))
        for pending in batch:
            run = pending.decision.run
            pending.result = Applied(run, tuple(rows.get(run.id, ()))) if run.id in updated else Conflict()

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
        return tuple(_outbox(r) for r in records)

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
        return [_run(row) for row in rows]

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
        return [_outbox(r) for r in rows]

    async def outbox_done(self, ids: Sequence[int]) -> None:
        """Forget published outbox rows.

        The deletion is deferred: it rides along with the next transition this
        process commits, or with :meth:`flush_outbox` (the relay calls it every
        cycle), so publishing costs no round trip of its own. A crash before the
        deletion only means the relay publishes the rows again, and the version
        check drops the duplicates.
        """
        self._sent.extend(ids)
        if len(self._sent) >= _SENT_FLUSH_AT:
            await self.flush_outbox()

    async def claim_outbox_rows(self, ids: Sequence[int], until: float) -> None:
        if ids:
            async with self._conn() as conn:
                await conn.execute(q.CLAIM_OUTBOX_ROWS, list(ids), until)

    async def flush_outbox(self) -> None:
        sent, self._sent = self._sent, []
        if not sent:
            return
        try:
            async with self._conn() as conn:
                await conn.execute(q.DELETE_OUTBOX, sent)
        except BaseException:
            self._sent = sent + self._sent
            raise

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

        def on_notify(_conn: object, _pid: int, _channel: str, payload: object) -> None:
            with contextlib.suppress(ValueError, TypeError):
                wake(float(str(payload)))

        if self._listener is None:
            try:
                self._listener = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
            except (OSError, asyncpg.PostgresError) as exc:
                raise StoreError(f"cannot open the timer listener: {exc}") from exc
        await self._listener.add_listener(self.timer_channel, on_notify)

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
        return [_dead_letter(r) for r in rows]

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(q.GET_DEAD_LETTER, dead_letter_id)
        return _dead_letter(row) if row is not None else None

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


def _run_args(run: Run) -> tuple[Any, ...]:
    return (
        run.id,
        run.workflow,
        run.workflow_version,
        run.status.value,
        run.version,
        run.priority,
        run.idempotency_key,
        run.input,
        run.data,
        run.machine_json(),
        list(run.current_states),
        run.error.to_json() if run.error else None,
        dict(run.trace_context) if run.trace_context else None,
        run.deadline,
        run.sla_met,
        run.created_at,
        run.updated_at,
        run.finished_at,
    )


@dataclass(eq=False)
class _Load:
    run_id: str
    run: Run | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass(eq=False)
class _Pending:
    decision: Decision
    headers: Mapping[str, str] | None
    result: Applied | Conflict | BaseException | None = None


_BATCH_MAX = 256
"""Transitions per group commit; beyond it, the rest go in the next statement."""


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to the column arrays that ``unnest`` takes."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _run_document(run: Run, previous_version: int) -> dict[str, Any]:
    """One run's row of the group commit, as jsonb_to_recordset reads it."""
    return {
        "id": run.id,
        "prev": previous_version,
        "status": run.status.value,
        "version": run.version,
        "priority": run.priority,
        "data": run.data,
        "machine": run.machine_json(),
        "states": list(run.current_states),
        "error": run.error.to_json() if run.error else None,
        "trace_context": dict(run.trace_context) if run.trace_context else None,
        "deadline": run.deadline,
        "sla_met": run.sla_met,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
    }


def _update_args(run: Run, previous_version: int) -> tuple[Any, ...]:
    return (
        run.id,
        previous_version,
        run.status.value,
        run.version,
        run.priority,
        run.data,
        run.machine_json(),
        list(run.current_states),
        run.error.to_json() if run.error else None,
        dict(run.trace_context) if run.trace_context else None,
        run.deadline,
        run.sla_met,
        run.updated_at,
        run.finished_at,
    )


def _run(row: Row) -> Run:
    return run_from_columns(
        id=row["id"],
        workflow=row["workflow"],
        workflow_version=row["workflow_version"],
        status=row["status"],
        version=row["version"],
        priority=row["priority"],
        idempotency_key=row["idempotency_key"],
        input=row["input"],
        data=row["data"],
        machine=row["machine"],
        error=row["error"],
        trace_context=row["trace_context"],
        deadline=row["deadline"],
        sla_met=row["sla_met"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
    )


def _outbox(row: Row) -> OutboxMessage:
    return OutboxMessage(row["id"], row["run_id"], row["kind"], row["body"], row["priority"], row["headers"])


def _dead_letter(row: Row) -> DeadLetterRecord:
    return DeadLetterRecord(
        id=row["id"],
        source=row["source"],
        run_id=row["run_id"],
        workflow=row["workflow"],
        state=row["state"],
        seq=row["seq"],
        attempt=row["attempt"],
        kind=row["kind"],
        reason=row["reason"],
        error=ErrorInfo.from_json(row["error"]) if row["error"] else None,
        attempts=row["attempts"],
        created_at=row["created_at"],
        status=row["status"],
        resolved_at=row["resolved_at"],
        resolved_by=row["resolved_by"],
        message=row["message"],
    )
