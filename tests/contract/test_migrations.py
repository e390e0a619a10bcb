"""Migration 0017 on a deployment with data: history moves onto partitions without losing a row.

The runs are made by the store and the core as they are now, in every status,
in a schema of today's layout; their rows are copied into a schema migrated
only up to 0016 (the unpartitioned layout), which is then migrated: every row
must be there, unchanged, and the store must go on with the runs it holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from legato import Task, Workflow
from legato.machine.commands import Decision
from legato.machine.decide import decide, start_run
from legato.machine.events import CancelRequested, SignalReceived, StepFailed, StepSucceeded, TimerFired
from legato.machine.policies import OnFailure, RetryPolicy
from legato.machine.run import Run, RunStatus
from legato.machine.vocabulary import TimerPurpose
from legato.store.base import Applied
from legato.store.migrations import migrations
from legato.store.postgres import PostgresStore
from legato.store.rows import new_run_id
from tests.conftest import PG_DSN, unique
from tests.contract.workflow import NOW, WF
from tests.shared_servers import drop_schema
from tests.unit.sim import boom

DAY = 86400.0


def h(ctx: Any) -> None:
    return None


SAGA = Workflow(
    "saga",
    start="a",
    retry=RetryPolicy(max_attempts=1),
    states={"a": Task(h, next="b", compensate=h), "b": Task(h, compensate=h)},
)
HOLD = Workflow(
    "hold",
    start="a",
    retry=RetryPolicy(max_attempts=1),
    on_failure=OnFailure.SUSPEND,
    states={"a": Task(h)},
)


async def _drive(store: PostgresStore, wf: Workflow, run: Run, *events: Any, at: float) -> Run:
    for event in events:
        decision = decide(wf, run, event, at)
        assert isinstance(decision, Decision), decision
        applied = await store.apply(decision)
        assert isinstance(applied, Applied), applied
        run = applied.run
    return run


async def _every_status(store: PostgresStore) -> dict[RunStatus, Run]:
    """A run in every status, started over a week (several days of history)."""

    async def start(wf: Workflow, days: float, key: str | None = None) -> Run:
        at = NOW - days * DAY
        return (await store.create_run(start_run(wf, new_run_id(), {"n": days}, at, idempotency_key=key))).run

    at = NOW
    fail = StepFailed(1, 1, boom("ValueError", "x"))
    runs = {
        RunStatus.RUNNING: await start(WF, 6, key="k-running"),
        RunStatus.SUCCEEDED: await _drive(
            store,
            WF,
            await start(WF, 5, key="k-done"),
            StepSucceeded(1, 1, {"a": 1}),
            StepSucceeded(2, 1, {"b": 2}),
            SignalReceived("go", actor="ops"),
            at=at,
        ),
        RunStatus.FAILED: await _drive(
            store,
            WF,
            await start(WF, 4),
            fail,
            TimerFired("retry:1", TimerPurpose.RETRY, 1, 2),
            StepFailed(1, 2, boom("ValueError", "x")),
            at=at,
        ),
        RunStatus.CANCELLED: await _drive(
            store, WF, await start(WF, 3), CancelRequested("ops", compensate=False), at=at
        ),
        RunStatus.SUSPENDED: await _drive(store, HOLD, await start(HOLD, 2), fail, at=at),
        RunStatus.COMPENSATING: await _drive(
            store, SAGA, await start(SAGA, 1), StepSucceeded(1, 1), StepFailed(2, 1, boom()), at=at
        ),
    }
    compensated = await _drive(
        store, SAGA, await start(SAGA, 1), StepSucceeded(1, 1), StepFailed(2, 1, boom()), at=at
    )
    compensation = compensated.tokens[0]
    runs[RunStatus.COMPENSATED] = await _drive(
        store, SAGA, compensated, StepSucceeded(compensation.seq, 1, kind=compensation.kind), at=at
    )
    # A rejected event is recorded too.
    await store.record_rejection(runs[RunStatus.SUCCEEDED], "StepSucceeded", "finished", at)
    for status, run in runs.items():
        assert run.status is status, (status, run.status)
    return runs


# A row as text, without the column the migration adds: the same before and after.
_ROWS = "SELECT id, (to_jsonb(h) - 'run_created_at')::text AS row FROM"

_COPY = ("runs", "history", "timers", "outbox", "dead_letters", "map_items", "step_leases")


async def _columns(conn: asyncpg.Connection, schema: str, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2"
        " ORDER BY ordinal_position",
        schema,
        table,
    )
    return [r["column_name"] for r in rows]


@pytest.fixture
async def old_schema() -> AsyncIterator[str]:
    """A schema migrated up to 0016: the unpartitioned layout."""
    name = unique("t")
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"; SET search_path = "{name}"')
        async with conn.transaction():
            for migration in migrations("postgres"):
                if migration.number < 17:
                    await conn.execute(migration.sql)
        await conn.execute(
            "CREATE TABLE schema_migrations (number integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in migrations("postgres"):
            if migration.number < 17:
                await conn.execute(
                    "INSERT INTO schema_migrations (number, name) VALUES ($1, $2)",
                    migration.number,
                    migration.name,
                )
    finally:
        await conn.close()
    yield name
    await drop_schema(name)


async def test_0017_moves_history_onto_partitions_without_losing_a_row(
    pg_store: PostgresStore, old_schema: str
) -> None:
    runs = await _every_status(pg_store)
    source = pg_store.schema
    conn = await asyncpg.connect(PG_DSN)
    try:
        assert await conn.fetchval(f'SELECT count(*) FROM "{old_schema}".history') == 0
        for table in _COPY:
            # The columns the old layout has (history has no run_created_at yet).
            cols = ", ".join(await _columns(conn, old_schema, table))
            await conn.execute(
                f'INSERT INTO "{old_schema}".{table} ({cols}) SELECT {cols} FROM "{source}".{table}'
            )
        for table in ("history", "timers", "outbox", "dead_letters"):  # their ids go on
            qualified = f'"{old_schema}".{table}'
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence($1, 'id'), (SELECT coalesce(max(id), 0) + 1 FROM {qualified}))",
                qualified,
            )
        rows = await conn.fetchval(f'SELECT count(*) FROM "{old_schema}".history')
        assert rows >= 30
        before = await conn.fetch(f'{_ROWS} "{old_schema}".history h ORDER BY id')
    finally:
        await conn.close()

    migrated = PostgresStore(PG_DSN, old_schema, min_size=1, max_size=2)
    await migrated.open()
    try:
        assert (await migrated.migrate())[0] == "0017_partitioned_history"
        async with migrated.pool.acquire() as c:
            after = await c.fetch(f"{_ROWS} history h ORDER BY id")
            assert (
                await c.fetchval("SELECT relkind::text FROM pg_class WHERE oid = 'history'::regclass") == "p"
            )
            # Every row on the partition of its run's day, none in the default one.
            assert await c.fetchval("SELECT count(*) FROM history_default") == 0
            misplaced = await c.fetchval(
                "SELECT count(*) FROM history h JOIN runs r ON r.id = h.run_id"
                " WHERE h.run_created_at <> r.created_at"
            )
            assert misplaced == 0
        assert [r["row"] for r in after] == [r["row"] for r in before]

        # The store goes on: the histories read back, and a running run moves on.
        for run in runs.values():
            assert await migrated.history(run.id) == await pg_store.history(run.id)
        running = await migrated.load_run(runs[RunStatus.RUNNING].id)
        assert running is not None
        moved = await _drive(migrated, WF, running, StepSucceeded(1, 1, {"a": 1}), at=NOW)
        assert moved.version == running.version + 1
        history = await migrated.history(running.id)
        assert len(history) > len(await pg_store.history(running.id))
        async with migrated.pool.acquire() as c:
            newest = await c.fetchval("SELECT max(id) FROM history")
        assert newest > max(r["id"] for r in before)  # the id sequence went on
    finally:
        await migrated.close()
