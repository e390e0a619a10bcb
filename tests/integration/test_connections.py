"""Connections restarted under a live worker: it recovers by itself, loses nothing, doubles nothing."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import asyncpg

from legato import RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.postgres import PostgresStore
from tests.conftest import PG_DSN, worker_env
from tests.integration.harness import all_runs, eventually, spawn_worker, wait_finished
from tests.integration.test_processes import APP, assert_each_transition_once, publish_orders


async def close_rabbitmq_connections(namespace: str) -> int:
    """Close the worker's AMQP connections the way a broker restart or a network cut would."""
    listing = await anyio.run_process(["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"])
    pids = [
        line.split("\t", 1)[0]
        for line in listing.stdout.decode().splitlines()
        if f'"connection_name","legato:{namespace}"' in line
    ]
    for pid in pids:
        await anyio.run_process(
            ["rabbitmqctl", "-q", "close_connection", pid, "test: connection restart"], check=False
        )
    return len(pids)


async def terminate_postgres_backends(schema: str) -> int:
    conn = await asyncpg.connect(PG_DSN)
    try:
        return len(
            await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                f"legato {schema}"[:63],
            )
        )
    finally:
        await conn.close()


async def test_a_worker_survives_its_broker_and_database_connections_being_cut(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    env = worker_env(
        pg_schema, namespace, SHOP_STEP_SLEEP="0.05", LEGATO_RETRY_PAUSE="0.2", LEGATO_RELAY_GRACE="1"
    )
    log = tmp_path / "worker.log"
    worker = spawn_worker(APP, env, "--concurrency", "16", log=log)
    try:
        await publish_orders(rabbit, 150)

        async def progress(count: int) -> bool:
            runs = await all_runs(pg_store)
            return sum(r.status is RunStatus.SUCCEEDED for r in runs) >= count

        await eventually(lambda: progress(20), timeout=60)
        # The worker's own connections: the test's store uses another application name.
        assert await close_rabbitmq_connections(namespace) >= 1
        await eventually(lambda: progress(60), timeout=90)
        assert await terminate_postgres_backends(pg_schema) >= 1
        runs = await wait_finished(pg_store, 150, timeout=120)
        assert worker.poll() is None, log.read_text()[-2000:]  # it recovered; it did not die
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    assert code == 0, log.read_text()[-2000:]
    await assert_each_transition_once(pg_store, runs)


async def test_the_timer_listener_comes_back_after_its_connection_dies(
    pg_schema: str, rabbit: RabbitMQBroker
) -> None:
    from legato import App, RetryPolicy, StepContext, Task, Workflow
    from legato.worker.runtime import WorkerSettings
    from tests.integration.harness import running

    async def noop(ctx: StepContext) -> None:
        return None

    app = App([Workflow("w", start="a", states={"a": Task(noop, retry=RetryPolicy.none())})])
    store = PostgresStore(PG_DSN, pg_schema, min_size=1, max_size=4)
    await store.open()
    try:
        async with running(
            app, store, rabbit, WorkerSettings(concurrency=4, timer_poll_interval=0.1)
        ) as worker:
            listening = (
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'"
            )
            name = f"legato {pg_schema}"[:63]
            conn = await asyncpg.connect(PG_DSN)
            try:
                [first] = await eventually(lambda: conn.fetch(listening, name), timeout=30)
                # A restart takes every backend of the worker, the LISTEN one with them.
                await terminate_postgres_backends(pg_schema)
                [second] = await eventually(
                    lambda: _other_listener(conn, listening, name, first["pid"]), timeout=30
                )
                assert second["pid"] != first["pid"]
                assert worker.started.is_set()
            finally:
                await conn.close()
    finally:
        await store.close()


async def _other_listener(conn: asyncpg.Connection, query: str, name: str, old: int) -> list[asyncpg.Record]:
    return [r for r in await conn.fetch(query, name) if r["pid"] != old]


async def test_too_many_connections_is_an_outage_not_a_crash(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    # A role allowed two connections, for a worker whose pool wants six: the
    # database refuses the rest ("too many connections for role").
    role = f"legato_limited_{pg_schema}"[:63]
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 2')
        await admin.execute(f'GRANT ALL ON SCHEMA "{pg_schema}" TO "{role}"')
        await admin.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA "{pg_schema}" TO "{role}"')
        await admin.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA "{pg_schema}" TO "{role}"')
        env = worker_env(
            pg_schema,
            namespace,
            LEGATO_DATABASE_URL=PG_DSN.replace("postgres@", f"{role}@"),
            LEGATO_POOL_SIZE="6",
            LEGATO_RETRY_PAUSE="0.1",
            LEGATO_MIGRATE="false",
        )
        log = tmp_path / "worker.log"
        worker = spawn_worker(APP, env, "--concurrency", "16", log=log)
        try:
            await publish_orders(rabbit, 60)
            runs = await wait_finished(pg_store, 60, timeout=120)
            assert worker.poll() is None, log.read_text()[-2000:]
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=30)
        assert code == 0, log.read_text()[-2000:]
        assert "TooManyConnectionsError" in log.read_text()  # it did meet the limit
        await assert_each_transition_once(pg_store, runs)
    finally:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()
