"""Servers of a test's own (tests/servers.py), for tests that take them away."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import OwnPostgres, OwnRabbitMQ


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
