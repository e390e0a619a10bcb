"""Outages: servers taken away under real workers.

A test that stops, kills or restarts a server does it to a server of its own
(tests/servers.py); the rest of the tier runs on the shared servers, as the
integration tier does, and fails the same way when they are down.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import OwnPostgres, OwnRabbitMQ
from tests.shared_servers import namespace, pg_schema, pg_store, rabbit, shared_servers

__all__ = ["namespace", "own_postgres", "own_rabbitmq", "pg_schema", "pg_store", "rabbit", "shared_servers"]


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A running Postgres cluster of this test's own; stop, kill or restart it at will."""
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def own_rabbitmq() -> Iterator[OwnRabbitMQ]:
    """A running RabbitMQ node of this test's own; stop or restart it at will."""
    server = OwnRabbitMQ()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
