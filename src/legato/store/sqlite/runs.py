"""The SQLite store's runs-and-transitions role; :meth:`SqliteRuns._write_effects`
is the only code that turns a decision's effects into rows here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, assert_never

import aiosqlite
import anyio

from legato.errors import KeyRetired
from legato.machine.commands import Decision
from legato.machine.run import Run
from legato.machine.search import search_values
from legato.machine.vocabulary import DeadLetterStatus
from legato.notices import OUTBOX_KIND as NOTICE
from legato.store.base import (
    Applied,
    Conflict,
    ConsumeTimer,
    Created,
    Guard,
    GuardFailed,
    HistoryEntry,
    MapItem,
    OutboxMessage,
    ResolveDeadLetter,
    RunQuery,
)
from legato.store.effects import Effects, effects
from legato.store.rows import (
    CHANGING_COLUMNS,
    JSON_COLUMNS,
    RUN_COLUMNS,
    Row,
    canonical_run_id,
    dead_letter_body,
    dead_letter_headers,
    history_from_row,
    run_columns,
    run_from_row,
    run_id_range,
)
from legato.store.sqlite import sql as q
from legato.store.sqlite.completions import write_completions
from legato.store.sqlite.connection import SqliteConnection, dumps, loads


class SqliteRuns(SqliteConnection):
    async def create_run(self, decision: Decision, headers: Mapping[str, str] | None = None) -> Created:
        async with self._write() as db:
            created, found = await self._create_in(db, decision, headers)
        self._wake_timers(found)
        return created

    async def _create_in(
        self, db: aiosqlite.Connection, decision: Decision, headers: Mapping[str, str] | None
    ) -> tuple[Created, Effects]:
        """Insert a run and its first transition inside the caller's transaction;
        the caller wakes the timer poller with the effects once it commits."""
        run = decision.run
        found = effects(decision)
        cursor = await db.execute(q.INSERT_RUN, _run_args(run))
        if cursor.rowcount == 0:
            cursor = await db.execute(q.SELECT_RUN_BY_KEY, (run.idempotency_key,))
            row = await cursor.fetchone()
            assert row is not None
            return Created(_run(row), False, ()), Effects((), (), (), (), (), (), (), (), (), (), True)
        if run.idempotency_key is not None:
            cursor = await db.execute(q.RETIRED_KEY, (run.idempotency_key, run.created_at))
            retired = await cursor.fetchone()
            if retired is not None:
                raise KeyRetired(run.idempotency_key, retired["run_id"], retired["expires_at"])
        if run.parent is not None:
            await db.execute(q.SET_PARENT, (run.parent.run_id, run.id))
        outbox = await self._write_effects(db, run, found, headers)
        run = await self._write_map(db, run, found)
        outbox += await self._children_in(db, found)
        return Created(run, True, outbox), found

    async def _children_in(self, db: aiosqlite.Connection, found: Effects) -> tuple[OutboxMessage, ...]:
        """The child runs a transition starts, in its transaction; their outbox rows.
        Their messages carry no headers of the parent's: a child's spans go under its own root."""
        outbox: tuple[OutboxMessage, ...] = ()
        for child in found.children:
            created, _ = await self._create_in(db, child, None)
            outbox += created.outbox
        return outbox

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
        found = effects(decision)
        result: Applied | Conflict | GuardFailed
        async with self._lock:
            db = self.db
            await db.execute("BEGIN IMMEDIATE")
            try:
                result = await self._apply_in(db, decision, found, guard, headers)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await db.execute("ROLLBACK")
                raise
            with anyio.CancelScope(shield=True):
                await db.execute("COMMIT" if isinstance(result, Applied) else "ROLLBACK")
        if isinstance(result, Applied):
            self._wake_timers(found)
            for watch in list(self._run_watchers):
                watch(result.run.id, result.run.status)
            return result
        return result

    async def _apply_in(
        self,
        db: aiosqlite.Connection,
        decision: Decision,
        found: Effects,
        guard: Guard | None,
        headers: Mapping[str, str] | None,
    ) -> Applied | Conflict | GuardFailed:
        run = decision.run
        match guard:
            case None:
                pass
            case ConsumeTimer(timer_id):
                cursor = await db.execute(q.CONSUME_TIMER, (timer_id,))
                if cursor.rowcount != 1:
                    return GuardFailed(f"timer {timer_id} already fired")
            case ResolveDeadLetter(dead_letter_id, actor):
                cursor = await db.execute(
                    q.RESOLVE_DEAD_LETTER, (DeadLetterStatus.REPLAYED, run.updated_at, actor, dead_letter_id)
                )
                if cursor.rowcount != 1:
                    return GuardFailed(f"dead letter {dead_letter_id} is not open (already replayed?)")
            case _:
                assert_never(guard)
        cursor = await db.execute(q.UPDATE_RUN, _update_args(run, decision.previous_version))
        if cursor.rowcount != 1:
            return Conflict()
        outbox = await self._write_effects(db, run, found, headers)
        run = await self._write_map(db, run, found)
        return Applied(run, outbox + await self._children_in(db, found))

    async def _write_map(self, db: aiosqlite.Connection, run: Run, found: Effects) -> Run:
        """A map's finished items, then its join's results (read back into ``run``)."""
        await db.executemany(
            q.INSERT_MAP_ITEM,
            [
                (
                    run.id,
                    m.map_seq,
                    m.index,
                    m.ok,
                    None if m.result is None else dumps(m.result),
                    dumps(m.error.to_json()) if m.error else None,
                    run.updated_at,
                )
                for m in found.map_items
            ],
        )
        for collect in found.collect:
            cursor = await db.execute(q.COLLECT_MAP_RESULTS, (run.id, collect.map_seq, collect.key))
            row = await cursor.fetchone()
            assert row is not None
            run = run.evolve(data=loads(row[0]))
        if found.collect and run.search is not None:
            # The join changed the data here, after the decision: its search values follow.
            run = run.evolve(search=search_values(run.search, run.data))
            await db.execute(q.SET_SEARCH, (dumps(dict(run.search or {})), run.id))
        return run

    async def _write_effects(
        self, db: aiosqlite.Connection, run: Run, found: Effects, headers: Mapping[str, str] | None
    ) -> tuple[OutboxMessage, ...]:
        await db.executemany(
            q.INSERT_HISTORY,
            [
                (run.id, run.version, idx, h.kind, h.state, h.attempt, h.at, h.actor, dumps(dict(h.detail)))
                for idx, h in enumerate(found.history)
            ],
        )
        for key in found.cancel:
            await db.execute(q.DELETE_TIMER, (run.id, key))
        for timer in found.schedule:
            await db.execute(
                q.UPSERT_TIMER,
                (run.id, timer.key, timer.purpose, timer.seq, timer.attempt, timer.fire_at),
            )
        outbox: list[OutboxMessage] = []
        task_headers = dict(headers or {})

        async def put(kind: str, body: bytes, priority: int, message_headers: dict[str, str]) -> None:
            cursor = await db.execute(
                q.INSERT_OUTBOX,
                (run.id, kind, body, priority, dumps(message_headers), run.updated_at),
            )
            assert cursor.lastrowid is not None
            outbox.append(OutboxMessage(cursor.lastrowid, run.id, kind, body, priority, message_headers))

        for body, priority in found.tasks:
            await put("task", body, priority, task_headers)
        for body, priority in found.notices:
            await put(NOTICE, body, priority, task_headers)
        for close in found.close:
            await db.executemany(
                q.CLOSE_DEAD_LETTERS,
                [(close.status, run.updated_at, close.actor, run.id, seq) for seq in close.seqs],
            )
        for letter in found.dead_letters:
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
                    dumps(letter.error.to_json()),
                    letter.attempts,
                    run.updated_at,
                ),
            )
            assert cursor.lastrowid is not None
            body = dead_letter_body(run, letter, cursor.lastrowid)
            await put("dead_letter", body, run.priority, {**task_headers, **dead_letter_headers(letter)})
        await write_completions(db, run, found)
        return tuple(outbox)

    def _wake_timers(self, found: Effects) -> None:
        times = _timer_times(found)
        if times and self._timer_watchers:
            soonest = min(times)
            for wake in self._timer_watchers:
                wake(soonest)

    async def record_rejection(self, run: Run, event: str, reason: str, at: float) -> None:
        async with self._write() as db:
            await db.execute(
                q.INSERT_REJECTION,
                (run.id, run.version, at, dumps({"event": event, "reason": reason})),
            )

    async def list_runs(self, query: RunQuery) -> list[Run]:
        sql, args = _listing(query, query.limit)
        return [_run(row) for row in await self._read(sql, *args)]

    async def children(self, run_id: str) -> list[Run]:
        rows = await self._read(q.SELECT_CHILDREN, canonical_run_id(run_id) or run_id)
        return [_run(row) for row in rows]

    async def count_runs(self, query: RunQuery) -> int:
        sql, args = _listing(query, -1)  # LIMIT -1: no limit
        rows = await self._read(q.COUNT_OF.format(listing=sql), *args)
        return int(rows[0][0])

    async def run_ids_starting_with(self, prefix: str, limit: int) -> list[str]:
        bounds = run_id_range(prefix)
        if bounds is None:
            return []
        rows = await self._read(q.RUN_IDS_BETWEEN, *bounds, limit)
        return [str(row[0]) for row in rows]

    async def history(self, run_id: str) -> list[HistoryEntry]:
        rows = await self._read(q.SELECT_HISTORY, canonical_run_id(run_id) or run_id)
        return [history_from_row(r, loads) for r in rows]

    async def map_items(self, run_id: str, map_seq: int, after: int = -1, limit: int = 100) -> list[MapItem]:
        rows = await self._read(q.MAP_ITEMS, canonical_run_id(run_id) or run_id, map_seq, after + 1, limit)
        return [
            MapItem(
                index=r["idx"],
                ok=bool(r["ok"]),
                result=None if r["result"] is None else loads(r["result"]),
                error=None if r["error"] is None else loads(r["error"]),
                finished_at=r["finished_at"],
            )
            for r in rows
        ]


def _timer_times(found: Effects) -> list[float]:
    """When the timers a transition schedules fire, its child runs' included."""
    times = [t.fire_at for t in found.schedule]
    for child in found.children:
        times.extend(_timer_times(effects(child)))
    return times


def _run_args(run: Run) -> tuple[Any, ...]:
    values = run_columns(run)
    return tuple(_encoded(values, column) for column in RUN_COLUMNS)


def _update_args(run: Run, previous_version: int) -> tuple[Any, ...]:
    values = run_columns(run)
    return (*(_encoded(values, column) for column in CHANGING_COLUMNS), run.id, previous_version)


def _encoded(values: dict[str, Any], column: str) -> Any:
    return dumps(values[column]) if column in JSON_COLUMNS else values[column]


def _run(row: Row) -> Run:
    return run_from_row(row, loads)


def _listing(query: RunQuery, limit: int) -> tuple[str, list[Any]]:
    """The statement listing the runs ``query`` asks for, and its arguments."""
    where: list[Any] = []
    for path, value in query.where.items():
        where += [f'$."{path}"', value]
    sql = q.LIST_RUNS.format(
        where=" ".join(q.WHERE_SEARCH.format(8 + 2 * i, 9 + 2 * i) for i in range(len(query.where)))
    )
    status = query.status.value if query.status else None
    args = [status, query.workflow, query.before, query.since, query.until, query.key, limit, *where]
    return sql, args
