"""Flow control in one worker on real Postgres and RabbitMQ: waiting steps hold
nothing, do not block other keys, and their waiting time is recorded."""

from __future__ import annotations

from pathlib import Path

import anyio

from legato import App, ConcurrencyLimit, Priority, RateLimit, RunStatus, StepContext, Task, Workflow
from legato.broker.base import Topology
from legato.broker.memory import MemoryBroker
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.observe import Observer, RateLimitWaitedInput
from legato.store.postgres import PostgresStore
from legato.store.sqlite import SqliteStore
from legato.worker.runtime import WorkerSettings
from tests.conftest import AMQP_URL, PG_DSN
from tests.integration.flow import attempts, max_in_window, max_overlap
from tests.integration.harness import all_runs, eventually, running, wait_finished


async def noop(ctx: StepContext) -> None:
    return None


async def pause(ctx: StepContext) -> None:
    await anyio.sleep(0.2)


class Waits(Observer):
    def __init__(self) -> None:
        self.waits: list[tuple[str, float]] = []

    def rate_limit_waited(self, waited: RateLimitWaitedInput) -> None:
        self.waits.append((waited.limit, waited.seconds))


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


class CountingStore(PostgresStore):
    """Counts the trips to the database for global tokens."""

    reservations = 0

    async def reserve_tokens(
        self, bucket: str, count: int, rate: float, capacity: float, now: float
    ) -> float:
        self.reservations += 1
        return await super().reserve_tokens(bucket, count, rate, capacity, now)


async def test_a_global_rate_limit_leases_tokens_in_batches_not_one_trip_per_step(
    pg_schema: str, rabbit: RabbitMQBroker
) -> None:
    store = CountingStore(PG_DSN, pg_schema, min_size=1, max_size=4)
    await store.open()
    try:
        await store.migrate()
        app = App(
            [Workflow("paced", start="a", states={"a": Task(noop, rate_limit="api")})],
            limits=[RateLimit("api", 40, burst=20)],  # batches of 8 tokens
        )
        client = Client(store, rabbit, app)
        for _ in range(80):
            await client.start("paced", {})
        async with running(app, store, rabbit):
            await wait_finished(store, 80)
        starts = [a.started for a in await attempts(store)]
    finally:
        await store.close()
    print(f"global 40/s: {store.reservations} trips to the database for {len(starts)} steps")
    assert store.reservations <= 80 / 4
    assert max_in_window(starts) <= 40 + 20


async def test_a_global_slot_is_renewed_while_its_step_runs_longer_than_the_lease(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async def long(ctx: StepContext) -> None:
        await anyio.sleep(2.0)

    app = App(
        [Workflow("long", start="a", states={"a": Task(long, concurrency_limit="one", concurrency_key="k")})],
        limits=[ConcurrencyLimit("one", 1, lease=0.6)],
    )
    client = Client(pg_store, rabbit, app)
    for _ in range(2):
        await client.start("long", {"k": "same"})
    # Two workers (two lease holders): without renewal the second would take
    # the slot 0.6 s after the first, while the first is still running.
    other = RabbitMQBroker(AMQP_URL, rabbit.topology)
    async with running(app, pg_store, rabbit), running(app, pg_store, other):
        await wait_finished(pg_store, 2)
    intervals = [(a.started, a.finished) for a in await attempts(pg_store)]
    assert max_overlap(intervals) == 1


async def test_the_embedded_default_enforces_global_limits_too(tmp_path: Path, namespace: str) -> None:
    store = SqliteStore(tmp_path / "legato.db")
    broker = MemoryBroker(Topology(namespace))
    await store.open()
    await store.migrate()
    app = App(
        [Workflow("w", start="a", states={"a": Task(pause, rate_limit="api", concurrency_limit="one")})],
        limits=[RateLimit("api", 20, burst=4), ConcurrencyLimit("one", 2)],
    )
    try:
        client = Client(store, broker, app)
        for _ in range(12):
            await client.start("w", {})
        async with running(app, store, broker):
            await wait_finished(store, 12)
        history = [e for r in await all_runs(store) for e in await store.history(r.id)]
    finally:
        await store.close()
    intervals = [
        (e.detail["started_at"], e.detail["finished_at"]) for e in history if e.kind == "step_succeeded"
    ]
    assert len(intervals) == 12
    assert max_overlap(intervals) == 2
    assert any("waited" in e.detail for e in history if e.kind == "step_succeeded")
