"""A broker connection that fails at start says so once, in legato's words."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from legato.broker.rabbitmq import RabbitMQBroker
from legato.errors import BrokerError


async def test_a_failed_first_connection_makes_no_promise_to_reconnect(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def connect_robust(*args: Any, **kwargs: Any) -> None:
        # What aio-pika does when the server closes a fresh connection (a node
        # booting or shutting down): it promises a reconnect that will never come,
        # because the worker is about to give up or try again on its own schedule.
        logging.getLogger("aio_pika.robust_connection").info(
            "Connection to %s closed. Reconnecting after %r seconds.", "amqp://x", 5
        )
        raise ConnectionError("CONNECTION_FORCED - broker forced connection closure")

    monkeypatch.setattr("aio_pika.connect_robust", connect_robust)
    caplog.set_level(logging.DEBUG)
    broker = RabbitMQBroker("amqp://guest:guest@127.0.0.1:1/")
    with pytest.raises(BrokerError, match="cannot connect to RabbitMQ"):
        await broker.connect()
    assert "Reconnecting after" not in caplog.text
    # Once connected, aio-pika's reconnect lines are true again, and they are kept.
    logging.getLogger("aio_pika.robust_connection").info("Reconnecting after %r seconds.", 1)
    assert "Reconnecting after 1 seconds." in caplog.text


async def test_a_reconnecting_broker_is_not_ready() -> None:
    class Reconnecting:
        """aio-pika's robust connection between two attempts: not closed, not connected."""

        is_closed = False
        connected = asyncio.Event()

    broker = RabbitMQBroker("amqp://guest:guest@127.0.0.1:1/")
    broker._connection = Reconnecting()  # type: ignore[assignment]
    with pytest.raises(BrokerError, match="not connected"):
        await broker.ping()
