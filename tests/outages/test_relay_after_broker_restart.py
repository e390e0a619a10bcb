"""The outbox relay publishes again within moments of the broker's return."""

from __future__ import annotations

import time
import uuid

import anyio
import asyncpg

from legato.broker.base import Topology
from legato.broker.rabbitmq import RabbitMQBroker
from legato.clock import SystemClock
from legato.machine.definition import Priority
from legato.store.postgres import PostgresStore
from legato.worker.relay import OutboxRelay
from legato.worker.runtime import WorkerSettings, supervised
from tests.conftest import PG_DSN
from tests.integration.harness import eventually
from tests.servers import OwnRabbitMQ, port_open


async def _insert_outbox_rows(schema: str, count: int) -> None:
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
    try:
        for _ in range(count):
            await conn.execute(
                "INSERT INTO outbox (run_id, kind, body, priority, created_at) VALUES ($1, 'task', $2, 1, now())",
                uuid.uuid4(),
                b'{"run": "x"}',
            )
    finally:
        await conn.close()


async def _queued(url: str, namespace: str, queue: str) -> int:
    broker = RabbitMQBroker(url, Topology(namespace))
    try:
        await broker.connect()
        return (await broker.depths())[queue]
    except Exception:
        return 0
    finally:
        await broker.close()


async def test_the_relay_publishes_within_moments_of_the_broker_coming_back(
    own_rabbitmq: OwnRabbitMQ, pg_store: PostgresStore, pg_schema: str, namespace: str
) -> None:
    defaults = WorkerSettings()  # the relay as a worker runs it
    broker = RabbitMQBroker(own_rabbitmq.url, Topology(namespace))
    await broker.connect()
    relay = OutboxRelay(pg_store, broker, SystemClock(), defaults.relay_interval, grace=0.0)
    queue = Topology(namespace).task_queue(Priority.NORMAL)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(supervised, "outbox-relay", relay.run)
            await anyio.to_thread.run_sync(own_rabbitmq.stop)
            await _insert_outbox_rows(pg_schema, 5)
            # The relay claims them and fails to publish, at least once.
            await eventually(lambda: _claimed(pg_schema), timeout=30)
            await anyio.sleep(defaults.relay_interval * 2)  # a few failed passes, as in an outage
            await anyio.to_thread.run_sync(own_rabbitmq.start)
            back = time.monotonic()
            await eventually(lambda: relay.relayed >= 5, timeout=60)
            took = time.monotonic() - back
            group.cancel_scope.cancel()
    finally:
        await broker.close()
    assert took < 3.5, f"published {took:.1f}s after the broker was back"
    assert port_open(own_rabbitmq.port)
    assert await _queued(own_rabbitmq.url, namespace, queue) == 5


async def _claimed(schema: str) -> bool:
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM outbox WHERE claimed_until IS NOT NULL"))
    finally:
        await conn.close()
