"""History kinds and timer purposes reach the database as their plain strings on
every write path, and the insights queries built from the named sets are still
served by the partial indexes."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from legato import App, RetryPolicy, Task, Workflow
from legato.clock import ManualClock
from legato.engine import Engine
from legato.machine.events import StepFailed, StepSucceeded
from legato.store.ports import Store
from legato.store.postgres import PostgresStore
from legato.store.postgres.insights import ERROR_PATTERNS, STEP_STATS
from legato.store.sqlite import SqliteStore
from tests.unit.sim import boom

T0 = 1_800_000_000.0


async def noop(ctx: object) -> None:
    return None


app = App(
    [
        Workflow(
            "vocab",
            start="a",
            retry=RetryPolicy(max_attempts=3, initial_delay=5, jitter=0),
            states={"a": Task(noop, next="b"), "b": Task(noop)},
        )
    ]
)


async def raw(store: Store, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows as the database holds them, past the store's conversions."""
    if isinstance(store, PostgresStore):
        async with store.pool.acquire() as conn:
            return [tuple(r) for r in await conn.fetch(sql.replace("?", "$1"), *args)]
    assert isinstance(store, SqliteStore)
    with sqlite3.connect(store.path) as db:
        return list(db.execute(sql, args).fetchall())


async def test_kinds_and_purposes_are_stored_as_plain_strings(store: Store) -> None:
    clock = ManualClock(T0)
    engine = Engine(app, store, None, clock)
    run = (await engine.start("vocab", {})).run.id  # create_run
    await engine.apply(run, StepSucceeded(1, 1))  # runs, history and tasks only: group commit on Postgres
    await engine.apply(run, StepFailed(2, 1, boom()))  # schedules a timer: the full write
    await engine.apply(run, StepSucceeded(1, 1))  # stale: a rejection line

    kinds = await raw(store, "SELECT kind FROM history WHERE run_id = ? ORDER BY id", run)
    assert [k for (k,) in kinds] == [
        "run_started",
        "step_scheduled",
        "step_succeeded",
        "step_scheduled",
        "step_failed",
        "retry_scheduled",
        "rejected",
    ]
    assert {type(k) for (k,) in kinds} == {str}
    assert await raw(store, "SELECT key, purpose FROM timers WHERE run_id = ?", run) == [("retry:2", "retry")]
    [timer] = await store.claim_timers(T0 + 10, 30, 10)
    assert timer.purpose == "retry"


_CHILD_INDEXES = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass
"""


async def test_the_insights_queries_are_served_by_the_partial_indexes(pg_store: PostgresStore) -> None:
    # With sequential scans off, a query uses the partial index only if the
    # planner proves its predicate from the query's own ``kind IN (...)``.
    async with pg_store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        outcomes = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {STEP_STATS}", T0, T0 + 1, 100))
        failures = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {ERROR_PATTERNS}", T0, T0 + 1, 100))
        # history is partitioned (migration 0017): the plan names each partition's
        # own index of the partial index.
        children = {
            parent: {r[0] for r in await conn.fetch(_CHILD_INDEXES, parent)}
            for parent in ("history_outcomes_idx", "history_failures_idx")
        }
    assert children["history_outcomes_idx"]
    assert all(re.search(rf"\b{name}\b", outcomes) for name in children["history_outcomes_idx"])
    assert all(re.search(rf"\b{name}\b", failures) for name in children["history_failures_idx"])
    assert "Seq Scan on history" not in outcomes + failures
