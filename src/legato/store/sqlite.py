"""The embedded store: SQLite through aiosqlite.

For trying legato and for development: one file, no server. It mirrors the
Postgres schema and passes the same contract suite. Writes take SQLite's
write lock up front (``BEGIN IMMEDIATE``) so that a CLI process and a worker
can share the file safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import orjson

from legato.errors import StoreError
from legato.machine.commands import Decision
from legato.machine.run import Run
from legato.store import flow_sqlite as flow
from legato.store import sql_sqlite as q
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
    ResolveDeadLetter,
    RunQuery,
)
from legato.store.migrations import migrations
from legato.store.rows import (
    CHANGING_COLUMNS,
    JSON_COLUMNS,
    RUN_COLUMNS,
    Row,
    canonical_run_id,
    dead_letter_body,
    dead_letter_from_columns,
    dead_letter_headers,
    dead_letters,
    history_rows,
    run_columns,
    run_from_row,
    task_bodies,
    timers_to_cancel,
    timers_to_schedule,
)


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(value: str | bytes | None) -> Any:
    return None if value is None else orjson.loads(value)


class SqliteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._timer_watchers: list[Callable[[float], None]] = []
        self._users = 0

    async def open(self) -> None:
        """Connect; every open() is matched by a close(), the last one closes."""
        self._users += 1
        if self._db is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            self._db.row_factory = aiosqlite.Row
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA busy_timeout=10000")
            await self._db.execute("PRAGMA foreign_keys=ON")
            await self._db.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as exc:
            self._users -= 1
            raise StoreError(f"cannot open the SQLite store at {self.path}: {exc}") from exc

    async def close(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users:
            return
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time, holding SQLite's write lock."""
        async with self._lock:
            db = self.db
            await db.execute("BEGIN IMMEDIATE")
            # Shielded: a cancellation between BEGIN and COMMIT/ROLLBACK would
            # leave the connection inside a transaction for the next caller.
            try:
                yield db
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await db.execute("ROLLBACK")
                raise
            else:
                with anyio.CancelScope(shield=True):
                    await db.execute("COMMIT")

    async def _read(self, sql: str, *args: Any) -> list[aiosqlite.Row]:
        async with self._lock:
            cursor = await self.db.execute(sql, args)
            return list(await cursor.fetchall())

    async def ping(self) -> None:
        await self._read("SELECT 1")

    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self._write() as db:
            await db.execute(q.CREATE_MIGRATIONS_TABLE)
            cursor = await db.execute(q.APPLIED_MIGRATIONS)
            done = {row[0] for row in await cursor.fetchall()}
            for migration in migrations("sqlite"):
                if migration.number in done:
                    continue
                for statement in _statements(migration.sql):
                    await db.execute(statement)
                await db.execute(q.RECORD_MIGRATION, (migration.number, migration.name))
                applied.append(migration.name)
        return applied

    # -- runs ------------------------------------------------------------------

    async def create_run(self, decision: Decision, headers: Mapping[str, str] | None = None) -> Created:
        run = decision.run
        async with self._write() as db:
            cursor = await db.execute(q.INSERT_RUN, _run_args(run))
            if cursor.rowcount == 0:
                cursor = await db.execute(q.SELECT_RUN_BY_KEY, (run.idempotency_key,))
                row = await cursor.fetchone()
                assert row is not None
                return Created(_run(row), False, ())
            outbox = await self._write_effects(db, decision, headers)
        self._wake_timers(decision)
        return Created(run, True, outbox)

    async def load_run(self, run_id: str) -> Run | None:
        canonical = canonical_run_id(run_id)
        if canonical is None:
            return None
        rows = await self._read(q.SELECT_RUN, canonical)
        return _run(rows[0]) if rows else None

    async def apply(
        self,
        decision: Decision,
        guard: Guard | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Applied | Conflict | GuardFailed:
        run = decision.run
        result: Applied | Conflict | GuardFailed
        async with self._lock:
            db = self.db
            await db.execute("BEGIN IMMEDIATE")
            try:
                result = await self._apply_in(db, decision, guard, headers)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await db.execute("ROLLBACK")
                raise
            with anyio.CancelScope(shield=True):
                await db.execute("COMMIT" if isinstance(result, Applied) else "ROLLBACK")
        if isinstance(result, Applied):
            self._wake_timers(decision)
            return Applied(run, result.outbox)
        return result

    async def _apply_in(
        self,
        db: aiosqlite.Connection,
        decision: Decision,
        guard: Guard | None,
        headers: Mapping[str, str] | None,
    ) -> Applied | Conflict | GuardFailed:
        run = decision.run
        if isinstance(guard, ConsumeTimer):
            cursor = await db.execute(q.CONSUME_TIMER, (guard.timer_id,))
            if cursor.rowcount != 1:
                return GuardFailed(f"timer {guard.timer_id} already fired")
        elif isinstance(guard, ResolveDeadLetter):
            cursor = await db.execute(
                q.RESOLVE_DEAD_LETTER, (run.updated_at, guard.actor, guard.dead_letter_id)
            )
            if cursor.rowcount != 1:
                return GuardFailed(f"dead letter {guard.dead_letter_id} is not open (already replayed?)")
        cursor = await db.execute(q.UPDATE_RUN, _update_args(run, decision.previous_version))
        if cursor.rowcount != 1:
            return Conflict()
        outbox = await self._write_effects(db, decision, headers)
        return Applied(run, outbox)

    async def _write_effects(
        self, db: aiosqlite.Connection, decision: Decision, headers: Mapping[str, str] | None
    ) -> tuple[OutboxMessage, ...]:
        run = decision.run
        await db.executemany(
            q.INSERT_HISTORY,
            [
                (
                    run.id,
                    run.version,
                    r.idx,
                    r.kind,
                    r.state,
                    r.attempt,
                    r.at,
                    r.actor,
                    _dumps(r.detail),
                )
                for r in history_rows(decision)
            ],
        )
        for key in timers_to_cancel(decision):
            await db.execute(q.DELETE_TIMER, (run.id, key))
        for timer in timers_to_schedule(decision):
            await db.execute(
                q.UPSERT_TIMER,
                (run.id, timer.key, timer.purpose, timer.seq, timer.attempt, timer.fire_at),
            )
        outbox: list[OutboxMessage] = []
        task_headers = dict(headers or {})

        async def put(kind: str, body: bytes, priority: int, message_headers: dict[str, str]) -> None:
            cursor = await db.execute(
                q.INSERT_OUTBOX,
                (run.id, kind, body, priority, _dumps(message_headers), run.updated_at),
            )
            assert cursor.lastrowid is not None
            outbox.append(OutboxMessage(cursor.lastrowid, run.id, kind, body, priority, message_headers))

        for body, priority in task_bodies(decision):
            await put("task", body, priority, task_headers)
        for letter in dead_letters(decision):
            cursor = await db.execute(
                q.INSERT_STEP_DEAD_LETTER,
                (
                    run.id,
                    run.workflow,
                    letter.state,
                    letter.seq,
                    letter.attempt,
                    letter.kind.value,
                    letter.reason,
                    _dumps(letter.error.to_json()),
                    letter.attempts,
                    run.updated_at,
                ),
            )
            assert cursor.lastrowid is not None
            body = dead_letter_body(run, letter, cursor.lastrowid)
            await put("dead_letter", body, run.priority, {**task_headers, **dead_letter_headers(letter)})
        return tuple(outbox)

    def _wake_timers(self, decision: Decision) -> None:
        scheduled = timers_to_schedule(decision)
        if scheduled and self._timer_watchers:
            soonest = min(t.fire_at for t in scheduled)
            for wake in self._timer_watchers:
                wake(soonest)

    async def record_rejection(self, run: Run, event: str, reason: str, at: float) -> None:
        async with self._write() as db:
            await db.execute(
                q.INSERT_REJECTION,
                (run.id, run.version, at, _dumps({"event": event, "reason": reason})),
            )

    async def list_runs(self, query: RunQuery) -> list[Run]:
        rows = await self._read(
            q.LIST_RUNS,
            query.status.value if query.status else None,
            query.workflow,
            query.before,
            query.limit,
        )
        return [_run(row) for row in rows]

    async def history(self, run_id: str) -> list[HistoryEntry]:
        rows = await self._read(q.SELECT_HISTORY, canonical_run_id(run_id) or run_id)
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
                detail=_loads(r["detail"]),
            )
            for r in rows
        ]

    # -- outbox and timers -------------------------------------------------------

    async def claim_outbox(
        self, older_than: float, now: float, lease: float, limit: int
    ) -> list[OutboxMessage]:
        async with self._write() as db:
            cursor = await db.execute(q.CLAIM_OUTBOX, (now + lease, older_than, now, limit))
            rows = await cursor.fetchall()
        return [
            OutboxMessage(
                r["id"],
                r["run_id"],
                r["kind"],
                bytes(r["body"]),
                r["priority"],
                _loads(r["headers"]),
            )
            for r in rows
        ]

    async def outbox_done(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        async with self._write() as db:
            await db.executemany(q.DELETE_OUTBOX, [(i,) for i in ids])

    async def claim_outbox_rows(self, ids: Sequence[int], until: float) -> None:
        if ids:
            async with self._write() as db:
                await db.executemany(q.CLAIM_OUTBOX_ROW, [(until, i) for i in ids])

    async def flush_outbox(self) -> None:
        return None  # deletions are immediate here

    async def claim_timers(self, now: float, lease: float, limit: int) -> list[DueTimer]:
        async with self._write() as db:
            cursor = await db.execute(q.CLAIM_TIMERS, (now + lease, now, now, limit))
            rows = await cursor.fetchall()
        return [
            DueTimer(r["id"], r["run_id"], r["key"], r["purpose"], r["seq"], r["attempt"], r["fire_at"])
            for r in rows
        ]

    async def drop_timer(self, timer_id: int) -> None:
        async with self._write() as db:
            await db.execute(q.CONSUME_TIMER, (timer_id,))

    async def next_timer_at(self) -> float | None:
        rows = await self._read(q.NEXT_TIMER)
        value: float | None = rows[0][0] if rows else None
        return value

    async def subscribe_timers(self, wake: Callable[[float], None]) -> None:
        """In-process only: another process's timers are found by polling."""
        self._timer_watchers.append(wake)

    # -- dead letters ------------------------------------------------------------

    async def record_poison(self, poison: PoisonMessage, at: float) -> int:
        message = {
            "queue": poison.queue,
            "routing_key": poison.routing_key,
            "message_id": poison.message_id,
            "headers": dict(poison.headers),
            "body": poison.body.decode("utf-8", "replace"),
        }
        async with self._write() as db:
            await db.execute(q.INSERT_POISON, (poison.reason, at, _dumps(message), poison.fingerprint))
            cursor = await db.execute(q.POISON_BY_FINGERPRINT, (poison.fingerprint,))
            row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def list_dead_letters(
        self, workflow: str | None = None, status: str | None = "open", limit: int = 100
    ) -> list[DeadLetterRecord]:
        rows = await self._read(q.LIST_DEAD_LETTERS, workflow, workflow, status, status, limit)
        return [_dead_letter(r) for r in rows]

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None:
        rows = await self._read(q.GET_DEAD_LETTER, dead_letter_id)
        return _dead_letter(rows[0]) if rows else None

    async def group_dead_letters(
        self, by: str, workflow: str | None = None, status: str | None = "open"
    ) -> list[DeadLetterGroup]:
        column = q.DEAD_LETTER_GROUP_COLUMNS[by]
        rows = await self._read(
            q.GROUP_DEAD_LETTERS.format(column=column), workflow, workflow, status, status
        )
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
        async with self._write() as db:
            cursor = await db.execute(q.RESOLVE_DEAD_LETTER, (at, actor, dead_letter_id))
            return cursor.rowcount == 1

    async def reopen_dead_letter(self, dead_letter_id: int) -> None:
        async with self._write() as db:
            await db.execute(q.REOPEN_DEAD_LETTER, (dead_letter_id,))

    async def purge_dead_letters(self, older_than: float | None) -> int:
        async with self._write() as db:
            cursor = await db.execute(q.PURGE_DEAD_LETTERS, (older_than,))
            return cursor.rowcount

    # -- flow control (legato.store.flow_sqlite) -------------------------------------

    async def reserve_tokens(
        self, bucket: str, count: int, rate: float, capacity: float, now: float
    ) -> float:
        async with self._write() as db:
            return await flow.reserve_tokens(db, bucket, count, rate, capacity, now)

    async def acquire_slot(
        self, bucket: str, limit: int, holder: str, now: float, lease: float
    ) -> int | None:
        async with self._write() as db:
            return await flow.acquire_slot(db, bucket, limit, holder, now, lease)

    async def release_slot(self, bucket: str, slot: int, holder: str) -> None:
        async with self._write() as db:
            await flow.release_slot(db, bucket, slot, holder)

    async def renew_slots(
        self, holder: str, slots: Sequence[tuple[str, int]], now: float
    ) -> list[tuple[str, int]]:
        async with self._write() as db:
            return await flow.renew_slots(db, holder, slots, now)

    async def slots_in_use(self, bucket: str, now: float) -> tuple[int, float | None]:
        rows = await self._read(q.SLOTS_IN_USE, bucket, now)
        return int(rows[0][0]), rows[0][1]

    async def purge_flow_state(self, now: float) -> int:
        async with self._write() as db:
            return await flow.purge_flow_state(db, now)


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _run_args(run: Run) -> tuple[Any, ...]:
    values = run_columns(run)
    return tuple(_encoded(values, column) for column in RUN_COLUMNS)


def _update_args(run: Run, previous_version: int) -> tuple[Any, ...]:
    values = run_columns(run)
    return (*(_encoded(values, column) for column in CHANGING_COLUMNS), run.id, previous_version)


def _encoded(values: dict[str, Any], column: str) -> Any:
    return _dumps(values[column]) if column in JSON_COLUMNS else values[column]


def _run(row: Row) -> Run:
    return run_from_row(row, _loads)


def _dead_letter(row: Row) -> DeadLetterRecord:
    return dead_letter_from_columns(row, _loads)
