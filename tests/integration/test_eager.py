"""Eager dispatch: a run's next step runs in the worker that just committed it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from legato import App, ConcurrencyLimit, RunStatus, StepContext, Succeed, Task, Workflow
from legato.broker.memory import MemoryBroker
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.machine.events import CancelRequested
from legato.store.postgres import PostgresStore
from legato.store.sqlite import SqliteStore
from legato.worker.runtime import WorkerSettings
from tests.integration.harness import all_runs, eventually, running, wait_finished

STEPS = 8
ORDER: list[str] = []


async def step(ctx: StepContext) -> None:
    ORDER.append(ctx.data["who"])
    await anyio.sleep(0.005)


CHAIN = Workflow(
    "chain",
    start="s0",
    states={
        **{f"s{i}": Task(step, next=f"s{i + 1}" if i < STEPS - 1 else "done") for i in range(STEPS)},
        "done": Succeed(),
    },
)


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "eager.db")
    await store.open()
    await store.migrate()
    yield store
    await store.close()


async def test_a_chains_next_steps_run_here_and_leave_no_outbox_rows(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    ORDER.clear()
    app = App([CHAIN])
    client = Client(pg_store, rabbit, app)
    async with running(app, pg_store, rabbit, WorkerSettings(concurrency=32)) as worker:
        for who in range(10):
            await client.start("chain", {"who": str(who)})  # first steps go through RabbitMQ
        runs = await wait_finished(pg_store, 10)
        assert worker.eager is not None
        taken = worker.eager.taken
    assert all(r.status is RunStatus.SUCCEEDED for r in runs)
    assert taken == 10 * (STEPS - 1)  # every later step stayed in the worker
    await pg_store.flush_outbox()
    assert await pg_store.pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_runs_of_one_level_progress_in_arrival_order_local_or_not(embedded: SqliteStore) -> None:
    ORDER.clear()
    app = App([CHAIN])
    async with running(app, embedded, MemoryBroker(), WorkerSettings(concurrency=2)) as worker:
        for who in "ABCD":
            await worker.engine.start("chain", {"who": who}, local=worker.eager)
        await wait_finished(embedded, 4)
    # When the first run finishes, every run is near its end too: none was starved.
    first_done = next(i for i, who in enumerate(ORDER) if ORDER[: i + 1].count(who) == STEPS)
    progress = {who: ORDER[: first_done + 1].count(who) for who in "ABCD"}
    assert min(progress.values()) >= STEPS - 2, progress


async def test_a_local_step_that_must_wait_for_a_limit_goes_to_the_broker(embedded: SqliteStore) -> None:
    held = anyio.Event()
    release = anyio.Event()
    calls: list[str] = []

    async def first(ctx: StepContext) -> None:
        return None

    async def charge(ctx: StepContext) -> None:
        calls.append(ctx.data["who"])
        if ctx.data["who"] == "A":
            held.set()
            await release.wait()

    app = App(
        [
            Workflow(
                "pay",
                start="a",
                states={"a": Task(first, next="charge"), "charge": Task(charge, concurrency_limit="bank")},
            )
        ],
        limits=[ConcurrencyLimit("bank", 1, scope="process")],
    )
    settings = WorkerSettings(concurrency=4, prefetch=4, waiting_room=2)
    async with running(app, embedded, MemoryBroker(), settings) as worker:
        a = (await worker.engine.start("pay", {"who": "A"}, local=worker.eager)).run
        await held.wait()
        others = [
            (await worker.engine.start("pay", {"who": f"B{i}"}, local=worker.eager)).run for i in range(20)
        ]
        # Held back by the limit, the charges wait as broker deliveries: the worker
        # holds the queue's prefetch and waiting room, no local step beyond the one
        # running, and the rest waits in the broker for any replica.
        eager = worker.eager
        assert eager is not None
        await eventually(
            lambda: worker.admission.waiting == 4 + 2 and eager.held == 1, timeout=10
        )  # A's charge
        depths = await worker.broker.depths()
        assert depths[worker.broker.topology.task_queues[1]] >= 10
        # A cancel while B0 waits is seen before its handler would run.
        await worker.engine.apply(others[0].id, CancelRequested("ops", compensate=False))
        release.set()
        await wait_finished(embedded, 21)
    assert "B0" not in calls
    statuses = {r.id: r.status for r in await all_runs(embedded)}
    assert statuses[a.id] is RunStatus.SUCCEEDED
    assert statuses[others[0].id] is RunStatus.CANCELLED
    assert all(statuses[r.id] is RunStatus.SUCCEEDED for r in others[1:])
