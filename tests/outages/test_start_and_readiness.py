"""Honest readiness, concurrent start-up, and workers that wait for their servers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import orjson

from legato.broker.base import Topology
from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.postgres import PostgresStore
from tests.conftest import PG_DSN, worker_env
from tests.integration.harness import eventually, spawn_worker, wait_finished
from tests.servers import OwnPostgres, OwnRabbitMQ, free_port, stop_process


async def test_thirty_workers_migrating_an_empty_database_at_once_all_succeed(pg_schema: str) -> None:
    stores = [PostgresStore(PG_DSN, pg_schema, min_size=1, max_size=1) for _ in range(30)]
    failures: list[BaseException] = []
    applied: list[list[str]] = []

    async def migrate(store: PostgresStore) -> None:
        try:
            applied.append(await store.migrate())
        except Exception as exc:
            failures.append(exc)

    try:
        for store in stores:
            await store.open()
        async with anyio.create_task_group() as group:
            for store in stores:
                group.start_soon(migrate, store)
    finally:
        for store in stores:
            await store.close()
    assert failures == []
    assert sum(1 for names in applied if names) == 1  # one of them did it, the others found it done


async def _get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def _status(url: str) -> int | None:
    try:
        return (await _get(url))[0]
    except aiohttp.ClientError:
        return None


async def test_readiness_reports_a_broker_that_is_away_while_liveness_stays_up(
    own_rabbitmq: OwnRabbitMQ, pg_store: PostgresStore, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "worker.log"
    env = worker_env(pg_schema, namespace, LEGATO_BROKER_URL=own_rabbitmq.url)
    worker = spawn_worker("tests.apps.traced:app", env, "--http-port", str(port), log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: _ready(base, 200), timeout=60)
        await anyio.to_thread.run_sync(own_rabbitmq.stop)
        # The robust connection is reconnecting, not closed: readiness must see it.
        try:
            _, body = await eventually(lambda: _ready(base, 503), timeout=30)
        except TimeoutError:
            last = await _status(f"{base}/readyz")
            raise AssertionError(f"/readyz {last} with the broker down:\n{log.read_text()[-4000:]}") from None
        assert body["checks"]["broker"] != "ok", body
        assert (await _get(f"{base}/healthz"))[0] == 200  # alive: riding out the outage
        assert worker.poll() is None, log.read_text()[-2000:]
        await anyio.to_thread.run_sync(own_rabbitmq.start)
        await eventually(lambda: _ready(base, 200), timeout=60)
        assert worker.poll() is None, log.read_text()[-2000:]
    finally:
        code = await anyio.to_thread.run_sync(stop_process, worker)
    assert code == 0, log.read_text()[-2000:]


async def _ready(base: str, wanted: int) -> tuple[int, dict[str, object]] | None:
    try:
        status, body = await _get(f"{base}/readyz")
    except aiohttp.ClientError:
        return None
    return (status, body) if status == wanted else None


async def test_a_worker_waits_for_servers_that_are_down_at_its_start(
    own_postgres: OwnPostgres, own_rabbitmq: OwnRabbitMQ, namespace: str, tmp_path: Path
) -> None:
    await anyio.to_thread.run_sync(own_postgres.stop)
    await anyio.to_thread.run_sync(own_rabbitmq.stop)
    log = tmp_path / "worker.log"
    env = worker_env(
        "legato",
        namespace,
        LEGATO_DATABASE_URL=own_postgres.dsn,
        LEGATO_BROKER_URL=own_rabbitmq.url,
        LEGATO_STARTUP_TIMEOUT="60",
    )
    worker = spawn_worker("tests.apps.traced:app", env, log=log)
    try:
        await eventually(lambda: log.read_text().count("waiting for the database") >= 2, timeout=30)
        await anyio.to_thread.run_sync(own_postgres.start)
        await eventually(lambda: "waiting for the broker" in log.read_text(), timeout=30)
        await anyio.to_thread.run_sync(own_rabbitmq.start)
        await eventually(lambda: "worker started" in log.read_text(), timeout=60)
        assert worker.poll() is None, log.read_text()[-3000:]
        store = PostgresStore(own_postgres.dsn, "legato", min_size=1, max_size=2)
        broker = RabbitMQBroker(own_rabbitmq.url, Topology(namespace))
        await store.open()
        await broker.connect()
        try:
            await broker.publish_event("trip.booked", orjson.dumps({"n": 1}), message_id="m-1")
            await wait_finished(store, 1, timeout=60)
        finally:
            await broker.close()
            await store.close()
    finally:
        code = await anyio.to_thread.run_sync(stop_process, worker)
    assert code == 0, log.read_text()[-3000:]


async def test_a_worker_gives_up_on_a_server_that_stays_down_with_one_line(
    pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    nothing_there = free_port()
    for server, env in (
        ("Postgres", {"LEGATO_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{nothing_there}/x"}),
        ("RabbitMQ", {"LEGATO_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{nothing_there}/"}),
    ):
        log = tmp_path / f"{server}.log"
        started = time.monotonic()
        worker = spawn_worker(
            "tests.apps.traced:app",
            worker_env(pg_schema, namespace, LEGATO_STARTUP_TIMEOUT="3", **env),
            log=log,
        )
        try:
            code = await anyio.to_thread.run_sync(worker.wait, 60)
        except subprocess.TimeoutExpired:
            worker.kill()
            raise
        took = time.monotonic() - started
        text = log.read_text()
        assert code != 0, text
        assert 3 <= took < 30, (took, text)
        assert text.count("waiting for the ") >= 2, text  # one line per attempt
        assert f"Error: cannot connect to {server}" in text.splitlines()[-1], text
        assert "Traceback" not in text, text
        assert "Reconnecting after" not in text, text  # no promise just before giving up


class _HeldMigration(PostgresStore):
    """Migrates only when the test says so: the broker is taken away meanwhile,
    between the worker's connecting and its consuming."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.migrating = anyio.Event()
        self.go_on = anyio.Event()

    async def migrate(self) -> list[str]:
        self.migrating.set()
        await self.go_on.wait()
        return await super().migrate()


async def test_a_broker_that_goes_away_as_the_worker_starts_consuming_is_waited_for(
    own_rabbitmq: OwnRabbitMQ, pg_store: PostgresStore, pg_schema: str, namespace: str
) -> None:
    from legato import App, StepContext, Task, Workflow
    from legato.worker.runtime import Worker, WorkerSettings

    async def noop(ctx: StepContext) -> None:
        return None

    app = App([Workflow("w", start="a", states={"a": Task(noop)}, triggers=("w",))])
    store = _HeldMigration(PG_DSN, pg_schema, min_size=1, max_size=4)
    broker = RabbitMQBroker(own_rabbitmq.url, Topology(namespace))
    worker = Worker(app, store, broker, WorkerSettings(concurrency=4, timer_poll_interval=0.05))
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        with anyio.fail_after(60):
            await store.migrating.wait()
        await anyio.to_thread.run_sync(own_rabbitmq.stop)
        store.go_on.set()  # it consumes now, with the broker away
        with anyio.fail_after(30):
            await worker.started.wait()
        await anyio.lowlevel.checkpoint()  # the consumer meets the outage (it used to end the worker here)
        await anyio.to_thread.run_sync(own_rabbitmq.start)
        publisher = RabbitMQBroker(own_rabbitmq.url, Topology(namespace))
        await publisher.connect()
        try:
            await publisher.publish_event("w", b"{}", message_id="e-1")
            [run] = await wait_finished(pg_store, 1, timeout=60)
        finally:
            await publisher.close()
        assert run.status.value == "succeeded"
        worker.stop()
