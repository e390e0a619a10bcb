"""Flow control in one worker on real Postgres and RabbitMQ: waiting steps hold
nothing, do not block other keys, and their waiting time is recorded."""

from __future__ import annotations

import anyio

from legato import App, ConcurrencyLimit, Priority, RateLimit, RunStatus, StepContext, Task, Workflow
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.observe import Observer
from legato.store.postgres import PostgresStore
from legato.worker.runtime import WorkerSettings
from tests.integration.flow import attempts, max_in_window, max_overlap
from tests.integration.harness import all_runs, eventually, running, wait_finished


async def noop(ctx: StepContext) -> None:
    return None


async def pause(ctx: StepContext) -> None:
    await anyio.sleep(0.2)


class Waits(Observer):
    def __init__(self) -> None:
        self.waits: list[tuple[str, float]] = []

    def rate_limit_waited(self, limit: str, seconds: float) -> None:
        self.waits.append((limit, seconds))


async def test_a_process_rate_limit_paces_starts_and_records_the_wait(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    app = App(
        [Workflow("paced", start="a", states={"a": Task(noop, rate_limit="api")})],
        limits=[RateLimit("api", 10, burst=3, scope="process")],
    )
    observer = Waits()
    client = Client(pg_store, rabbit, app)
    for _ in range(25):
        await client.start("paced", {})
    async with running(app, pg_store, rabbit, observer=observer):
        await wait_finished(pg_store, 25)
    starts = [a.started for a in await attempts(pg_store)]
    assert max_in_window(starts) <= 10 + 3
    # 25 starts: 3 at once from the full bucket, then one every 0.1 s.
    assert starts[-1] - starts[0] >= (25 - 3) / 10 - 0.05
    waited = [a.waited.get("api", 0.0) for a in await attempts(pg_store)]
    assert sum(w > 0 for w in waited) >= 20
    assert max(waited) >= 1.5  # the last ones waited about two seconds
    assert len(observer.waits) == sum(w > 0 for w in waited)
    assert {name for name, _ in observer.waits} == {"api"}


async def test_steps_waiting_for_one_key_neither_block_other_keys_nor_hold_slots(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    app = App(
        [
            Workflow(
                "per_customer",
                start="a",
                states={"a": Task(noop, rate_limit="customer", rate_key="customer")},
            ),
            Workflow("free", start="a", states={"a": Task(noop)}),
        ],
        limits=[RateLimit("customer", 1, burst=1, scope="process")],
    )
    client = Client(pg_store, rabbit, app)
    slow = [await client.start("per_customer", {"customer": "slow"}) for _ in range(30)]
    fast = [await client.start("per_customer", {"customer": f"c{i}"}) for i in range(5)]
    free = [await client.start("free", {}) for _ in range(5)]
    # Two slots and a prefetch of two: without parking, the slow customer's
    # thirty steps would hold both the slots and the prefetch for half a minute.
    settings = WorkerSettings(concurrency=2, prefetch=2, waiting_room=64, timer_poll_interval=0.05)
    async with running(app, pg_store, rabbit, settings) as worker:

        async def others_done() -> bool:
            runs = {r.id: r for r in await all_runs(pg_store)}
            return all(runs[r.id].status is RunStatus.SUCCEEDED for r in fast + free)

        await eventually(others_done, timeout=15)
        waiting = worker.admission.waiting
        runs = {r.id: r for r in await all_runs(pg_store)}
        slow_done = sum(runs[r.id].status is RunStatus.SUCCEEDED for r in slow)
    assert slow_done <= 10, "the slow customer runs at 1/s: most of its steps still wait"
    assert waiting >= 15, "they wait parked, not holding slots or the prefetch"


async def test_a_process_concurrency_limit_bounds_steps_in_flight(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    app = App(
        [Workflow("heavy", start="a", states={"a": Task(pause, concurrency_limit="pdf")})],
        limits=[ConcurrencyLimit("pdf", 2, scope="process")],
    )
    client = Client(pg_store, rabbit, app)
    for _ in range(8):
        await client.start("heavy", {})
    async with running(app, pg_store, rabbit):
        await wait_finished(pg_store, 8)
    intervals = [(a.started, a.finished) for a in await attempts(pg_store)]
    assert max_overlap(intervals) == 2


async def test_waiting_steps_are_admitted_high_priority_first(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    app = App(
        [Workflow("paced", start="a", states={"a": Task(noop, rate_limit="api")})],
        limits=[RateLimit("api", 20, burst=1, scope="process")],
    )
    client = Client(pg_store, rabbit, app)
    low = [await client.start("paced", {}, priority=Priority.LOW) for _ in range(30)]
    async with running(app, pg_store, rabbit):
        await eventually(lambda: _some_done(pg_store, 3))
        high = [await client.start("paced", {}, priority=Priority.HIGH) for _ in range(8)]
        await wait_finished(pg_store, len(low) + len(high))
    found = await attempts(pg_store)
    high_ids = {r.id for r in high}
    first_high = min(a.started for a in found if a.run_id in high_ids)
    last_high = max(a.started for a in found if a.run_id in high_ids)
    low_between = [a for a in found if a.run_id not in high_ids and first_high < a.started < last_high]
    # Weighted 8:1 among the steps waiting for the bucket: eight high, at most a couple of low.
    assert len(low_between) <= 2


async def _some_done(store: PostgresStore, count: int) -> bool:
    return sum(r.status is RunStatus.SUCCEEDED for r in await all_runs(store)) >= count
