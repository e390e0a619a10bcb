"""The Postgres store's runs-and-transitions role."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, assert_never

import asyncpg

from legato.errors import KeyRetired
from legato.machine.commands import Decision
from legato.machine.run import Run
from legato.machine.search import search_values
from legato.machine.vocabulary import DeadLetterStatus
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
from legato.store.effects import effects
from legato.store.postgres import sql as q
from legato.store.postgres.connection import PostgresConnection
from legato.store.postgres.creation import GroupCreate
from legato.store.postgres.rows import run_args, run_from_row
from legato.store.postgres.write import Write, write_batch, write_rest
from legato.store.rows import history_from_row, run_id_range

if TYPE_CHECKING:
    from legato.store.postgres.rows import Conn


class _Abort(Exception):
    """Rolls a transaction back and carries the answer out of it."""

    def __init__(self, result: Conflict | GuardFailed) -> None:
        self.result = result


class PostgresRuns(PostgresConnection):
    async def create_run(self, decision: Decision, headers: Mapping[str, str] | None = None) -> Created:
        write = Write(decision, effects(decision), headers)
        if write.effects.group_commit and decision.run.parent is None:
            # (A child run is created in its parent's transaction, with its parent column.)
            return await self._creations.create(write)
        return await self._create_one(write)

    @cached_property
    def _creations(self) -> GroupCreate:
        return GroupCreate(self._conn, self._create_one)

    async def _create_one(self, write: Write) -> Created:
        async with self._conn() as conn, conn.transaction():
            return await self._create_write(conn, write)

    async def _create_in(self, conn: Conn, decision: Decision, headers: Mapping[str, str] | None) -> Created:
        """Insert a run and its first transition inside the caller's transaction."""
        return await self._create_write(conn, Write(decision, effects(decision), headers))

    async def _create_write(self, conn: Conn, write: Write) -> Created:
        run = write.decision.run
        inserted = await conn.fetchval(q.INSERT_RUN, *run_args(run))
        if inserted is None:
            row = await conn.fetchrow(q.SELECT_RUN_BY_KEY, run.idempotency_key)
            assert row is not None
            return Created(run_from_row(row), False, ())
        if run.idempotency_key is not None:
            # After the insert: a retention pass that removed the key's run
            # has committed its retired key by the time the insert got the key.
            retired = await conn.fetchrow(q.RETIRED_KEY, run.idempotency_key, run.created_at)
            if retired is not None:
                raise KeyRetired(run.idempotency_key, retired["run_id"], retired["expires_at"])
        if run.parent is not None:
            await conn.execute(q.SET_PARENT, run.id, run.parent.run_id)
        written = await write_batch(conn, [write], new=True)
        rest = await write_rest(conn, write, self.timer_channel)
        children = await self._children_in(conn, write)
        if write.data is not None:
            search = search_values(run.search, write.data) if run.search is not None else None
            run = run.evolve(data=write.data, search=search)
        return Created(run, True, (*written.outbox.get(run.id, ()), *rest, *children))

    async def _children_in(self, conn: Conn, write: Write) -> list[OutboxMessage]:
        """The child runs a transition starts, in its transaction; their outbox rows.
        Their messages carry no headers of the parent's: a child's spans go under its own root."""
        outbox: list[OutboxMessage] = []
        for child in write.effects.children:
            created = await self._create_in(conn, child, None)
            outbox.extend(created.outbox)
        return outbox

    async def load_run(self, run_id: str) -> Run | None:
        return await self._batch.load(run_id)

    async def apply(
        self,
        decision: Decision,
        guard: Guard | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Applied | Conflict | GuardFailed:
        found = effects(decision)
        if guard is None and found.group_commit:
            return await self._batch.apply(decision, found, headers)
        run = decision.run
        write = Write(decision, found, headers)
        try:
            async with self._conn() as conn, conn.transaction():
                # The run row first, then the guard's row: every transaction takes
                # its locks in that order (a transition that cancels a timer locks
                # the run, then the timer), so a timer firing and a transition
                # cancelling it cannot deadlock.
                written = await write_batch(conn, [write])
                if run.id not in written.updated:
                    raise _Abort(Conflict())
                if guard is not None:
                    failure = await self._take_guard(conn, guard, run)
                    if failure is not None:
                        raise _Abort(failure)
                rest = await write_rest(conn, write, self.timer_channel)
                children = await self._children_in(conn, write)
        except _Abort as abort:
            return abort.result
        if write.data is not None:
            run = run.evolve(data=write.data)
        return Applied(run, (*written.outbox.get(run.id, ()), *rest, *children))

    async def _take_guard(self, conn: Conn, guard: Guard, run: Run) -> GuardFailed | None:
        match guard:
            case ConsumeTimer(timer_id):
                taken = await conn.fetchval(q.CONSUME_TIMER, timer_id)
                reason = f"timer {timer_id} already fired"
            case ResolveDeadLetter(dead_letter_id, actor):
                taken = await conn.fetchval(
                    q.RESOLVE_DEAD_LETTER, dead_letter_id, run.updated_at, actor, DeadLetterStatus.REPLAYED
                )
                reason = f"dead letter {dead_letter_id} is not open (already replayed?)"
            case _:
                assert_never(guard)
        return GuardFailed(reason) if taken is None else None

    async def record_rejection(self, run: Run, event: str, reason: str, at: float) -> None:
        async with self._conn() as conn:
            await conn.execute(
                q.INSERT_REJECTION,
                run.id,
                run.version,
                at,
                {"event": event, "reason": reason},
                run.created_at,
            )

    async def list_runs(self, query: RunQuery) -> list[Run]:
        sql, args = _listing(query, query.limit)
        async with self._conn() as conn:
            rows = await conn.fetch(sql, *args)
        return [run_from_row(row) for row in rows]

    async def count_runs(self, query: RunQuery) -> int:
        sql, args = _listing(query, None)  # LIMIT NULL: no limit
        async with self._conn() as conn:
            found: int = await conn.fetchval(q.COUNT_OF.format(listing=sql), *args)
        return found

    async def run_ids_starting_with(self, prefix: str, limit: int) -> list[str]:
        bounds = run_id_range(prefix)
        if bounds is None:
            return []
        async with self._conn() as conn:
            rows = await conn.fetch(q.RUN_IDS_BETWEEN, *bounds, limit)
        return [row[0] for row in rows]

    async def history(self, run_id: str) -> list[HistoryEntry]:
        async with self._conn() as conn:
            try:
                rows = await conn.fetch(q.SELECT_HISTORY, run_id)
            except asyncpg.exceptions.DataError:
                return []
        return [history_from_row(r) for r in rows]

    async def map_items(self, run_id: str, map_seq: int, after: int = -1, limit: int = 100) -> list[MapItem]:
        async with self._conn() as conn:
            try:
                rows = await conn.fetch(q.MAP_ITEMS, run_id, map_seq, after + 1, limit)
            except asyncpg.exceptions.DataError:
                return []
        return [
            MapItem(
                index=r["idx"],
                ok=r["ok"],
                result=r["result"],
                error=r["error"],
                finished_at=r["finished_at"],
            )
            for r in rows
        ]

    async def children(self, run_id: str) -> list[Run]:
        async with self._conn() as conn:
            try:
                rows = await conn.fetch(q.SELECT_CHILDREN, run_id)
            except asyncpg.exceptions.DataError:
                return []
        return [run_from_row(row) for row in rows]


def _listing(query: RunQuery, limit: int | None) -> tuple[str, list[Any]]:
    """The statement listing the runs ``query`` asks for, with only its own filters, and its arguments."""
    given = {
        "status": query.status.value if query.status else None,
        "workflow": query.workflow,
        "before": query.before,
        "since": query.since,
        "until": query.until,
        "key": query.key,
        "where": dict(query.where) or None,
    }
    args: list[Any] = []
    filters = ["true"]
    for name, value in given.items():
        if value is not None:
            args.append(value)
            filters.append(q.RUN_FILTERS[name].format(f"${len(args)}"))
    args.append(limit)
    return q.LIST_RUNS.format(filters=" AND ".join(filters), limit=f"${len(args)}"), args
