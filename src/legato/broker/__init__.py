"""The broker port and its backends (RabbitMQ, in-memory)."""

from legato.broker.base import Broker, Delivery, Topology

__all__ = ["Broker", "Delivery", "Topology"]
