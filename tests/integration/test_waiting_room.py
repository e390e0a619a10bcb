"""The waiting room in a running worker: parked steps wait, run or go, and leave nothing behind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from legato import App, ConcurrencyLimit, RunStatus, StepContext, Task, Workflow
from legato.broker.memory import MemoryBroker
from legato.client import Client
from legato.flow.gates import PROMISE_TTL
from legato.machine.events import CancelRequested
from legato.store.sqlite import SqliteStore
from legato.worker.runtime import WorkerSettings
from tests.integration.harness import all_runs, eventually, running, wait_finished


def bank(charge: Callable[[StepContext], Awaitable[None]]) -> App:
    """Charges, one at a time in a worker."""
    return App(
        [Workflow("pay", start="charge", states={"charge": Task(charge, concurrency_limit="bank")})],
        limits=[ConcurrencyLimit("bank", 1, scope="process")],
    )


async def test_parked_steps_that_run_or_are_cancelled_leave_nothing_in_the_waiting_room(
    sqlite_store: SqliteStore,
) -> None:
    """The cancelled step, woken, was promised the slot; settled without trying,
    it gives it up at once instead of holding it until the promise lapses."""
    release = anyio.Event()
    calls: list[str] = []

    async def charge(ctx: StepContext) -> None:
        calls.append(ctx.data["who"])
        if ctx.data["who"] == "first":
            await release.wait()

    app = bank(charge)
    broker = MemoryBroker()
    client = Client(sqlite_store, broker, app)
    settings = WorkerSettings(concurrency=4, prefetch=4, waiting_room=8, eager=False)
    async with running(app, sqlite_store, broker, settings) as worker:
        first = await client.start("pay", {"who": "first"})
        await eventually(lambda: calls == ["first"])
        others = [await client.start("pay", {"who": f"b{i}"}) for i in range(5)]
        await eventually(lambda: worker.admission.waiting == 5)
        # Cancelled while it waits: when its turn comes it is stale, acked unrun.
        await worker.engine.apply(others[0].id, CancelRequested("ops", compensate=False))
        release.set()
        with anyio.fail_after(PROMISE_TTL / 2):
            await wait_finished(sqlite_store, 6)
        await eventually(lambda: len(worker.waiting_room) == 0 and worker.admission.waiting == 0)
    assert "b0" not in calls
    statuses = {r.id: r.status for r in await all_runs(sqlite_store)}
    assert statuses[others[0].id] is RunStatus.CANCELLED
    assert all(statuses[r.id] is RunStatus.SUCCEEDED for r in [first, *others[1:]])


async def test_on_shutdown_parked_steps_go_back_to_the_queue(sqlite_store: SqliteStore) -> None:
    release = anyio.Event()
    calls: list[str] = []

    async def charge(ctx: StepContext) -> None:
        calls.append(ctx.data["who"])
        await release.wait()

    app = bank(charge)
    broker = MemoryBroker()
    client = Client(sqlite_store, broker, app)
    settings = WorkerSettings(concurrency=4, prefetch=4, waiting_room=8, eager=False, grace=0.1)
    async with running(app, sqlite_store, broker, settings) as worker:
        await client.start("pay", {"who": "first"})
        await eventually(lambda: calls == ["first"])
        for i in range(3):
            await client.start("pay", {"who": f"b{i}"})
        await eventually(lambda: worker.admission.waiting == 3)
    # Stopped: the three parked steps and the cancelled one are back in the queue.
    assert calls == ["first"]
    assert len(worker.waiting_room) == 0
    depths = await broker.depths()
    assert depths[broker.topology.task_queues[1]] == 4
