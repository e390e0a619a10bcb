"""What every tier shares; nothing here connects to a server.

The tests come in tiers. tests/unit needs no server: it runs with Postgres and
RabbitMQ stopped (`make unit`). tests/contract, tests/integration,
tests/browser and tests/outages run against the real Postgres and RabbitMQ
(tests/outages also on servers of its own, tests/servers.py); their conftest.py
takes the fixtures of tests/shared_servers.py, which fail the session with a
clear message -- never skip -- when a server cannot be reached.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from legato.store.sqlite import SqliteStore

PG_DSN = os.environ.get("LEGATO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("LEGATO_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROOT = Path(__file__).resolve().parent.parent


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "legato.db")
    await store.open()
    await store.migrate()
    yield store
    await store.close()


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
