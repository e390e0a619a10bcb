"""Fixtures on the shared Postgres and RabbitMQ, for the tiers that need them.

Each test gets its own Postgres schema and its own RabbitMQ namespace (every
exchange and queue name carries it), so tests cannot see each other and can
run beside other test runs on the same servers. A tier takes these fixtures by
importing them into its conftest.py; ``shared_servers`` comes with them and
stops the session, with the reason, when a server cannot be reached. Tests
fail then -- they never skip.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from legato.broker.base import Broker, Topology
from legato.broker.memory import MemoryBroker
from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.ports import Store
from legato.store.postgres import PostgresStore
from legato.store.sqlite import SqliteStore
from tests.conftest import AMQP_URL, PG_DSN, unique

__all__ = ["broker", "namespace", "pg_schema", "pg_store", "rabbit", "shared_servers", "store"]


@functools.cache
def unreachable() -> tuple[str, ...]:
    """What is wrong with the servers, once per session (several tiers ask)."""

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

    return tuple(asyncio.run(check()))


@pytest.fixture(scope="session", autouse=True)
def shared_servers() -> None:
    """Fail at once, with a clear message, when a real server is not there.

    Every test of a tier that needs the servers would fail on its own, each with
    a driver's error; one message naming the server and the cure is the kinder.
    """
    problems = unreachable()
    if problems:
        pytest.exit("\n".join(problems), returncode=1)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema name; dropped after the test."""
    name = unique("t")
    yield name
    asyncio.run(drop_schema(name))


async def drop_schema(name: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def namespace() -> Iterator[str]:
    """A fresh RabbitMQ namespace; its queues and exchanges are deleted after the test."""
    name = unique("legato_t")
    yield name
    asyncio.run(delete_namespace(name))


TEST_APPS = ("default", "billing", "shipping", "a", "b")
"""The app names tests use: their queues are deleted with the namespace (AMQP cannot list queues)."""


async def delete_namespace(name: str) -> None:
    topology = Topology(name)
    apps = [topology.serving(app, ()).app_queue for app in TEST_APPS]
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        queues = (
            *topology.task_queues,
            *apps,
            topology.signals_queue,
            topology.unrouted_queue,
            topology.legacy_triggers_queue,
            topology.dead_letter_queue,
        )
        for queue in queues:
            await channel.queue_delete(queue)
        exchanges = (
            topology.events_exchange,
            topology.routes_exchange,
            topology.unrouted_exchange,
            topology.tasks_exchange,
            topology.dead_letter_exchange,
        )
        for exchange in exchanges:
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


@pytest.fixture(params=["postgres", "sqlite"])
async def store(request: pytest.FixtureRequest, pg_schema: str, tmp_path: Path) -> AsyncIterator[Store]:
    """Every store backend, for the role suites (tests/contract/test_store_*.py)."""
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
