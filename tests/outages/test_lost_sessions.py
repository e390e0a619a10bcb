"""A terminated Postgres session is an outage, whatever asyncpg raises for it."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import anyio
import asyncpg

from legato import App, RetryPolicy, StepContext, Task, Workflow
from legato.broker.memory import MemoryBroker
from legato.broker.rabbitmq import RabbitMQBroker
from legato.errors import StoreError
from legato.messages import TaskMessage
from legato.store.postgres import PostgresStore
from legato.worker.execute import StepOutcome
from legato.worker.middleware import Next, StepCall
from legato.worker.runtime import WorkerSettings
from tests.conftest import PG_DSN, worker_env
from tests.integration.harness import all_runs, eventually, running, spawn_worker, wait_finished
from tests.integration.test_connections import terminate_postgres_backends
from tests.integration.test_processes import APP, assert_each_transition_once, publish_orders
from tests.servers import stop_process


async def test_every_error_of_a_terminated_session_is_an_outage(pg_schema: str) -> None:
    # Terminating asyncpg's backend while a query is in flight raises, in about a
    # fifth of the cases, InternalClientError ("cannot switch to state ...;
    # another operation is in progress") instead of a connection error.
    name = f"lost {pg_schema}"
    store = PostgresStore(PG_DSN, pg_schema, min_size=1, max_size=2, application_name=name)
    await store.open()
    admin = await asyncpg.connect(PG_DSN)
    causes: collections.Counter[str] = collections.Counter()
    try:
        for _ in range(60):

            async def query() -> None:
                async with store._conn() as conn, conn.transaction():
                    await conn.fetchval("SELECT pg_sleep(0.05)")
                    await conn.execute("SELECT 1")

            async with anyio.create_task_group() as group:
                group.start_soon(_expect_outage, query, causes)
                await anyio.sleep(random.uniform(0.0, 0.06))
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", name
                )
        assert causes["InternalClientError"] >= 1, causes  # the case did come up
        # The pool gives out working connections again (an idle one that was
        # terminated too fails once more, as an outage).
        await eventually(lambda: _pings(store), timeout=10)
    finally:
        await admin.close()
        await store.close()


async def _pings(store: PostgresStore) -> bool:
    try:
        await store.ping()
    except StoreError:
        return False
    return True


async def _expect_outage(query: object, causes: collections.Counter[str]) -> None:
    assert callable(query)
    try:
        await query()
    except StoreError as exc:
        causes[type(exc.__cause__).__name__] += 1


async def test_a_worker_rides_out_a_storm_of_terminated_sessions(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    env = worker_env(
        pg_schema, namespace, SHOP_STEP_SLEEP="0.02", LEGATO_RETRY_PAUSE="0.1", LEGATO_RELAY_GRACE="1"
    )
    log = tmp_path / "worker.log"
    worker = spawn_worker(APP, env, "--concurrency", "16", log=log)
    count = 200
    try:
        await publish_orders(rabbit, count)
        killed = 0
        with anyio.move_on_after(120):
            while len([r for r in await all_runs(pg_store) if r.status.value == "succeeded"]) < count:
                await anyio.sleep(random.uniform(0.05, 0.3))
                killed += await terminate_postgres_backends(pg_schema)
                assert worker.poll() is None, log.read_text()[-3000:]
        runs = await wait_finished(pg_store, count, timeout=120)
        assert worker.poll() is None, log.read_text()[-3000:]  # no side task died
    finally:
        code = await anyio.to_thread.run_sync(stop_process, worker)
    assert killed >= 10
    assert code == 0, log.read_text()[-3000:]
    assert await pg_store.list_dead_letters() == [], log.read_text()[-3000:]
    assert len(runs) == count
    await assert_each_transition_once(pg_store, runs)


async def test_a_task_dead_letter_names_its_run_workflow_and_state(pg_store: PostgresStore) -> None:
    async def noop(ctx: StepContext) -> None:
        return None

    class Broken:
        """A bug below the handler: every attempt to process the task raises."""

        async def __call__(self, call: StepCall, call_next: Next) -> StepOutcome:
            raise RuntimeError("a bug")

    workflow = Workflow("w", start="a", states={"a": Task(noop, retry=RetryPolicy.none())}, triggers=("w",))
    app = App([workflow])
    broker = MemoryBroker()
    await broker.connect()
    settings = WorkerSettings(concurrency=2, retry_pause=0.01, timer_poll_interval=0.05)
    async with running(app, pg_store, broker, settings, middleware=[Broken()]):
        await broker.publish_event("w", b"{}", message_id="e-1")
        [letter] = await eventually(pg_store.list_dead_letters, timeout=30)
    [run] = await all_runs(pg_store)
    assert letter.source == "message"
    assert "internal error: RuntimeError: a bug" in letter.reason
    assert (letter.run_id, letter.workflow, letter.state) == (run.id, "w", "a")
    assert letter.body is not None
    assert TaskMessage.decode(letter.body).run_id == run.id


async def test_an_outage_does_not_count_towards_dead_lettering(pg_store: PostgresStore) -> None:
    async def noop(ctx: StepContext) -> None:
        return None

    class OutageThenBug:
        """The first try meets an outage, the second a bug, the third goes through."""

        def __init__(self) -> None:
            self.failures: list[Exception] = [StoreError("Postgres restarting"), RuntimeError("a bug")]

        async def __call__(self, call: StepCall, call_next: Next) -> StepOutcome:
            if self.failures:
                raise self.failures.pop(0)
            return await call_next(call)

    workflow = Workflow("w", start="a", states={"a": Task(noop, retry=RetryPolicy.none())}, triggers=("w",))
    broker = MemoryBroker()
    await broker.connect()
    # Not eager: the step comes from the broker, which marks it redelivered after the outage.
    settings = WorkerSettings(concurrency=2, retry_pause=0.01, timer_poll_interval=0.05, eager=False)
    async with running(App([workflow]), pg_store, broker, settings, middleware=[OutageThenBug()]):
        await broker.publish_event("w", b"{}", message_id="e-1")
        [run] = await wait_finished(pg_store, 1, timeout=30)
    assert run.status.value == "succeeded"
    # Requeued after the outage it came back redelivered; its first bug was still only its first.
    assert await pg_store.list_dead_letters() == []
