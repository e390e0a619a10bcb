"""Building the store and broker that the settings name."""

from __future__ import annotations

from legato.broker.base import Broker, Topology
from legato.broker.memory import MemoryBroker
from legato.config import Settings
from legato.store.ports import Store
from legato.store.sqlite import SqliteStore


def make_store(settings: Settings, pool_size: int | None = None) -> Store:
    if settings.embedded_store:
        return SqliteStore(settings.sqlite_path())
    from legato.store.postgres import PostgresStore

    assert settings.database_url is not None
    size = pool_size or settings.pool_size
    return PostgresStore(settings.database_url, settings.database_schema, min_size=1, max_size=size)


def make_broker(settings: Settings) -> Broker:
    topology = Topology(settings.namespace, settings.queue_type)
    if settings.embedded_broker:
        return MemoryBroker(topology)
    from legato.broker.rabbitmq import RabbitMQBroker

    assert settings.broker_url is not None
    return RabbitMQBroker(settings.broker_url, topology)
