"""Shared fixtures: real Postgres and RabbitMQ, isolated per test.

Each test gets its own Postgres schema and its own RabbitMQ namespace (every
exchange and queue name carries it), so tests cannot see each other and can
run beside other test runs on the same servers. When a server cannot be
reached the tests fail -- they never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from legato.broker.base import Broker, Topology
from legato.broker.memory import MemoryBroker
from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.base import Store
from legato.store.postgres import PostgresStore
from legato.store.sqlite import SqliteStore

PG_DSN = os.environ.get("LEGATO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("LEGATO_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROOT = Path(__file__).resolve().parent.parent


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema name; dropped after the test."""
    name = unique("t")
    yield name
    import asyncio

    async def drop() -> None:
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
def namespace() -> Iterator[str]:
    """A fresh RabbitMQ namespace; its queues and exchanges are deleted after the test."""
    name = unique("legato_t")
    yield name
    import asyncio

    asyncio.run(delete_namespace(name))


async def delete_namespace(name: str) -> None:
    topology = Topology(name)
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        for queue in (*topology.task_queues, topology.triggers_queue, topology.dead_letter_queue):
            await channel.queue_delete(queue)
        for exchange in (topology.events_exchange, topology.tasks_exchange, topology.dead_letter_exchange):
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()


@pytest.fixture
async def pg_store(pg_schema: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(PG_DSN, pg_schema, min_size=1, max_size=4, application_name="legato tests")
    await store.open()
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "legato.db")
    await store.open()
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture(params=["postgres", "sqlite"])
async def store(request: pytest.FixtureRequest, pg_schema: str, tmp_path: Path) -> AsyncIterator[Store]:
    """Every store backend, for the contract suite."""
    backend: Store
    if request.param == "postgres":
        backend = PostgresStore(PG_DSN, pg_schema, min_size=1, max_size=4)
    else:
        backend = SqliteStore(tmp_path / "legato.db")
    await backend.open()
    await backend.migrate()
    yield backend
    await backend.close()


@pytest.fixture
async def rabbit(namespace: str) -> AsyncIterator[RabbitMQBroker]:
    broker = RabbitMQBroker(AMQP_URL, Topology(namespace))
    await broker.connect()
    yield broker
    await broker.close()


@pytest.fixture(params=["rabbitmq", "memory"])
async def broker(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[Broker]:
    """Every broker backend, for the contract suite."""
    backend: Broker
    if request.param == "rabbitmq":
        backend = RabbitMQBroker(AMQP_URL, Topology(namespace))
    else:
        backend = MemoryBroker(Topology(namespace))
    await backend.connect()
    yield backend
    await backend.close()


def worker_env(schema: str, namespace: str, **extra: str) -> dict[str, str]:
    """Environment for a worker subprocess on the test's schema and namespace."""
    env = {
        **os.environ,
        "LEGATO_DATABASE_URL": PG_DSN,
        "LEGATO_DATABASE_SCHEMA": schema,
        "LEGATO_BROKER_URL": AMQP_URL,
        "LEGATO_NAMESPACE": namespace,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "LEGATO_LOG_LEVEL": "info",
        # Postgres allows 100 connections and tests run beside each other.
        "LEGATO_POOL_SIZE": "4",
    }
    env.update(extra)
    return env


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail at once, with a clear message, when a real server is not there."""
    import asyncio

    async def check() -> list[str]:
        problems = []
        try:
            conn = await asyncpg.connect(PG_DSN, timeout=5)
            await conn.close()
        except Exception as exc:
            problems.append(f"Postgres at {PG_DSN} is not reachable ({exc}); run `make services`")
        try:
            connection = await aio_pika.connect(AMQP_URL, timeout=5)
            await connection.close()
        except Exception as exc:
            problems.append(f"RabbitMQ at {AMQP_URL} is not reachable ({exc}); run `make services`")
        return problems

    problems = asyncio.run(check())
    if problems:
        pytest.exit("\n".join(problems), returncode=1)
