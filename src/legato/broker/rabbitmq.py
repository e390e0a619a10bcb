"""The RabbitMQ broker (aio-pika).

Topology (``ns`` is the namespace, ``legato`` by default):

* ``ns.events`` -- topic exchange for events; routing key = event name. It is
  declared as legato 0.x declared it (no arguments), so publishers of any
  version keep working; it passes every event on to ``ns.routes`` (``#``).
* ``ns.routes`` -- topic exchange; each app's queue ``ns.app.NAME`` is bound to
  it once per event name the app's workflows trigger on, and ``ns.signals``
  to ``legato.signal``. Its alternate exchange ``ns.unrouted`` (fanout) takes
  every event no queue is bound to, into the ``ns.unrouted`` queue, whose
  consumers dead-letter it: an event no app wants is never silently dropped.
* ``ns.triggers`` -- the one event queue of legato 0.x (bound with ``#``): a
  worker that finds it unbinds it, moves what is left in it onto
  ``ns.events`` and deletes it once no old worker consumes it.
* ``ns.tasks`` -- direct exchange; ``ns.tasks.{high,normal,low}`` queues.
* ``ns.dead`` -- fanout dead-letter exchange and its queue.

Publishing uses publisher confirms with ``mandatory`` set, so a publish
returns only once RabbitMQ has the message and has routed it. The connection
is robust: it reconnects and re-consumes by itself.

The waiting room (deliveries parked while they wait for a rate or
concurrency limit): RabbitMQ fixes a consumer's prefetch when it subscribes
(``basic.qos`` with ``global=false`` applies to consumers created after it, and
quorum queues refuse ``global=true``), so the prefetch cannot be raised in
place. Instead, once half of a consumer's prefetch is parked, the queue gets a
fresh consumer with a fresh prefetch and the old one is cancelled. Cancelling
does not return its unacknowledged messages: the parked ones stay in the
worker, unacked, and are settled on the channel as usual.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    DeliveryMode,
)

from legato.broker.acks import ChannelAcks
from legato.broker.base import APP_HEADER, SIGNAL_ROUTING_KEY, Delivery, DeliveryHandler, Topology
from legato.clock import Clock, SystemClock
from legato.errors import BrokerError
from legato.outbox import OutboxMessage
from legato.priority import Priority
from legato.redact import redact

log = logging.getLogger("legato.broker")

RECONNECT_INTERVAL = 1.0
"""Seconds between attempts to reconnect to a broker that went away (aio-pika's
default, 5, keeps a worker idle that long after the broker is back)."""

_BROKER_ERRORS = (
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,  # a RuntimeError: a channel that died with its connection
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


def _not_reconnecting(record: logging.LogRecord) -> bool:
    return "Reconnecting after" not in record.getMessage()


@contextlib.contextmanager
def _quiet_reconnects() -> Iterator[None]:
    robust = logging.getLogger("aio_pika.robust_connection")
    robust.addFilter(_not_reconnecting)
    try:
        yield
    finally:
        robust.removeFilter(_not_reconnecting)


class RabbitMQBroker:
    def __init__(
        self,
        url: str,
        topology: Topology | None = None,
        connect_timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.url = url
        self.topology = topology or Topology()
        self.connect_timeout = connect_timeout
        self.clock = clock or SystemClock()
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._consume_channel: AbstractChannel | None = None
        self._acks: ChannelAcks | None = None
        self._events: AbstractExchange | None = None
        self._routes: AbstractExchange | None = None
        self._app_declared = False
        self._tasks: AbstractExchange | None = None
        self._dead: AbstractExchange | None = None
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._intakes: dict[str, _Intake] = {}
        self._stop = asyncio.Event()
        self._users = 0

    async def connect(self) -> None:
        """Connect; every connect() is matched by a close(), the last one closes."""
        self._users += 1
        if self._connection is not None:
            return
        # Until the first connection is up, failures are legato's to report (and
        # retry): aio-pika's "Reconnecting after 5 seconds" would be untrue.
        with _quiet_reconnects():
            try:
                self._connection = await aio_pika.connect_robust(
                    self.url,
                    timeout=self.connect_timeout,
                    reconnect_interval=RECONNECT_INTERVAL,
                    client_properties={"connection_name": f"legato:{self.topology.namespace}"},
                )
                self._publish_channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                await self._declare(self._publish_channel)
            except _BROKER_ERRORS as exc:
                await self.close()
                raise BrokerError(
                    f"cannot connect to RabbitMQ at {redact(self.url)}: {exc or type(exc).__name__}; check LEGATO_BROKER_URL"
                ) from exc

    async def _declare(self, channel: AbstractChannel) -> None:
        topo = self.topology
        self._events = await channel.declare_exchange(
            topo.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._tasks = await channel.declare_exchange(
            topo.tasks_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        self._dead = await channel.declare_exchange(
            topo.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead_queue = await channel.declare_queue(
            topo.dead_letter_queue, durable=True, arguments=self._queue_arguments(dead=True)
        )
        await dead_queue.bind(self._dead)
        unrouted = await channel.declare_exchange(
            topo.unrouted_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        unrouted_queue = await channel.declare_queue(
            topo.unrouted_queue, durable=True, arguments=self._queue_arguments()
        )
        await unrouted_queue.bind(unrouted)
        # A new exchange of its own carries the alternate exchange: adding the
        # argument to ns.events would make RabbitMQ refuse (PRECONDITION_FAILED)
        # every publisher that declares ns.events as it always was.
        self._routes = await channel.declare_exchange(
            topo.routes_exchange,
            aio_pika.ExchangeType.TOPIC,
            durable=True,
            arguments={"alternate-exchange": topo.unrouted_exchange},
        )
        await self._routes.bind(self._events, routing_key="#")
        signals = await channel.declare_queue(
            topo.signals_queue, durable=True, arguments=self._queue_arguments()
        )
        await signals.bind(self._routes, routing_key=SIGNAL_ROUTING_KEY)
        await self._declare_tasks(channel)

    async def _declare_tasks(self, channel: AbstractChannel) -> None:
        """The app's task queues, one per priority."""
        topo = self.topology
        for level in Priority:
            queue = await channel.declare_queue(
                topo.task_queue(level), durable=True, arguments=self._queue_arguments()
            )
            await queue.bind(topo.tasks_exchange, routing_key=topo.task_key(level))

    async def bind_app(self) -> None:
        if self._publish_channel is None:
            raise BrokerError("the broker is not connected")
        try:
            await self._declare_app(self._publish_channel)
        except _BROKER_ERRORS as exc:
            raise BrokerError(f"could not declare the app's queue: {exc or type(exc).__name__}") from exc

    async def _declare_app(self, channel: AbstractChannel) -> None:
        """The app's queue, bound to every event its workflows trigger on.

        Bindings are only ever added: an older version of the app may still be
        running and want an event this version dropped (docs/operations.md says
        how to remove a binding no version wants any more).
        """
        topo = self.topology
        await self._declare_tasks(channel)
        queue = await channel.declare_queue(topo.app_queue, durable=True, arguments=self._queue_arguments())
        for event in sorted(topo.events):
            await queue.bind(topo.routes_exchange, routing_key=event)
        if not self._app_declared:
            # Once the app's bindings are there, so that its events find them.
            await self._retire_legacy_triggers()
        self._app_declared = True

    async def _retire_legacy_triggers(self) -> None:
        """Move legato 0.x's ``ns.triggers`` queue over to the routed topology.

        Unbound first, so it takes no new events; what is left in it is
        published again on ``ns.events`` (routed as any event now) and acked;
        then it is deleted, unless an old worker still consumes it -- the next
        worker to start tries again.
        """
        assert self._connection is not None
        assert self._events is not None
        name = self.topology.legacy_triggers_queue
        channel = await self._connection.channel(publisher_confirms=True)
        try:
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return  # the usual case: there is none
            await queue.unbind(self.topology.events_exchange, routing_key="#")
            moved = 0
            while (message := await queue.get(fail=False)) is not None:
                await self._events.publish(
                    aio_pika.Message(
                        message.body,
                        delivery_mode=DeliveryMode.PERSISTENT,
                        content_type=message.content_type,
                        message_id=message.message_id,
                        headers=dict(message.headers or {}),
                        priority=message.priority,
                        timestamp=message.timestamp,
                    ),
                    routing_key=message.routing_key or "",
                    mandatory=True,
                )
                await message.ack()
                moved += 1
            try:
                await queue.delete(if_unused=True, if_empty=True)
                log.info(
                    "retired the queue %s of legato 0.x (%d events moved to %s)",
                    name,
                    moved,
                    self.topology.events_exchange,
                )
            except aiormq.exceptions.ChannelPreconditionFailed:
                log.info(
                    "the queue %s of legato 0.x is unbound (%d events moved); it is deleted once no old worker consumes it",
                    name,
                    moved,
                )
        finally:
            with contextlib.suppress(*_BROKER_ERRORS):
                await channel.close()

    def _queue_arguments(self, dead: bool = False) -> dict[str, Any]:
        arguments: dict[str, Any] = {"x-queue-type": self.topology.queue_type}
        if not dead:
            # Rejected or expired messages land in the dead-letter queue, never nowhere.
            arguments["x-dead-letter-exchange"] = self.topology.dead_letter_exchange
        return arguments

    async def close(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users:
            return
        connection, self._connection = self._connection, None
        self._consumers.clear()
        if connection is not None:
            try:
                await connection.close()
            except _BROKER_ERRORS:
                log.debug("error while closing the RabbitMQ connection", exc_info=True)

    def _require(self) -> tuple[AbstractExchange, AbstractExchange, AbstractExchange]:
        if self._events is None or self._tasks is None or self._dead is None:
            raise BrokerError("the broker is not connected")
        return self._events, self._tasks, self._dead

    async def ping(self) -> None:
        connection = self._connection
        # A robust connection that is reconnecting is not closed, only not connected.
        if connection is None or connection.is_closed or not connection.connected.is_set():
            raise BrokerError("not connected to RabbitMQ")

    def _timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    async def publish(self, messages: Sequence[OutboxMessage]) -> None:
        if not messages:
            return
        _, tasks, dead = self._require()
        pending = []
        for message in messages:
            amqp = aio_pika.Message(
                message.body,
                delivery_mode=DeliveryMode.PERSISTENT,
                content_type="application/json",
                headers=dict(message.headers),
            )
            if message.kind == "dead_letter":
                amqp.timestamp = self._timestamp()  # what `legato dlq purge --older-than` goes by
                pending.append(dead.publish(amqp, routing_key="", mandatory=True))
            else:
                # To the queues of the app whose engine made the task (the relay
                # publishes other apps' tasks too); older rows name none.
                app = message.headers.get(APP_HEADER) or self.topology.app
                routing_key = self.topology.task_key(message.priority, app)
                pending.append(tasks.publish(amqp, routing_key=routing_key, mandatory=True))
        # Pipelined: every publish is on the wire before the first confirm is awaited.
        try:
            await asyncio.gather(*pending)
        except _BROKER_ERRORS as exc:
            raise BrokerError(f"publish failed: {exc or type(exc).__name__}") from exc

    async def publish_event(
        self,
        name: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        priority: int | None = None,
    ) -> None:
        events, _, _ = self._require()
        message = aio_pika.Message(
            body,
            delivery_mode=DeliveryMode.PERSISTENT,
            content_type="application/json",
            message_id=message_id,
            headers=dict(headers or {}),
            priority=priority,
        )
        try:
            await events.publish(message, routing_key=name, mandatory=True)
        except _BROKER_ERRORS as exc:
            raise BrokerError(f"publish of event {name!r} failed: {exc or type(exc).__name__}") from exc

    async def republish(
        self, queue: str, routing_key: str, body: bytes, message_id: str | None, headers: Mapping[str, Any]
    ) -> None:
        events, tasks, _ = self._require()
        route = self.topology.task_route(queue)
        message = aio_pika.Message(
            body,
            delivery_mode=DeliveryMode.PERSISTENT,
            content_type="application/json",
            message_id=message_id,
            headers=dict(headers),
        )
        exchange, key = (
            (tasks, self.topology.task_key(route[1], route[0])) if route else (events, routing_key)
        )
        try:
            await exchange.publish(message, routing_key=key, mandatory=True)
        except _BROKER_ERRORS as exc:
            raise BrokerError(f"republish to {queue!r} failed: {exc or type(exc).__name__}") from exc

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        _, _, dead = self._require()
        headers = {
            **delivery.headers,
            "x-legato-reason": reason[:1024],
            "x-legato-queue": delivery.queue,
            "x-legato-routing-key": delivery.routing_key,
        }
        message = aio_pika.Message(
            delivery.body,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=delivery.message_id,
            headers=headers,
            timestamp=self._timestamp(),
        )
        try:
            await dead.publish(message, routing_key="", mandatory=True)
        except _BROKER_ERRORS as exc:
            raise BrokerError(f"dead-lettering failed: {exc or type(exc).__name__}") from exc

    async def consume(self, on_delivery: DeliveryHandler, prefetch: int, waiting_room: int = 0) -> None:
        if self._connection is None:
            raise BrokerError("the broker is not connected")
        self._stop.clear()
        await self._start_consuming(self._connection, on_delivery, prefetch, waiting_room)
        try:
            await self._stop.wait()
        finally:
            await self._cancel_consumers()
            self._intakes.clear()

    async def _start_consuming(
        self,
        connection: AbstractRobustConnection,
        on_delivery: DeliveryHandler,
        prefetch: int,
        waiting_room: int,
    ) -> None:
        if not connection.connected.is_set():  # reconnecting: no channel can be opened
            raise BrokerError("could not start consuming: not connected to RabbitMQ")
        channel = connection.channel(publisher_confirms=False)
        try:
            await channel  # opens it; fails too if the broker went away meanwhile
            self._consume_channel = channel
            await channel.set_qos(prefetch_count=prefetch)
            topo = self.topology
            await self._declare_app(channel)
            for name in (*topo.task_queues, *topo.event_queues):
                queue = await channel.get_queue(name, ensure=True)
                intake = _Intake(name, queue, prefetch, waiting_room, on_delivery)
                self._intakes[name] = intake
                await self._subscribe(intake)
                # Deliveries can arrive, and be parked, before the subscription has
                # returned its tag; the rotation check skipped them then, so look again.
                await self._rotate(intake)
        except _BROKER_ERRORS as exc:
            # The broker went away while we subscribed: drop the half-made channel
            # (a robust channel would restore its consumers beside the next attempt's).
            self._consumers.clear()
            self._intakes.clear()
            with contextlib.suppress(*_BROKER_ERRORS):
                await channel.close()
            raise BrokerError(f"could not start consuming: {exc or type(exc).__name__}") from exc

    async def _subscribe(self, intake: _Intake) -> None:
        """Give ``intake`` a new consumer (and so a fresh prefetch); cancel the old one."""

        async def deliver(message: AbstractIncomingMessage) -> None:
            intake.on_delivery(self._delivery(intake, message))

        old = intake.tag
        tag = await intake.queue.consume(deliver)
        intake.tag = tag
        if self._stop.is_set():
            # stop_consuming() ran while we subscribed: it did not see this consumer.
            await intake.queue.cancel(tag)
            return
        self._consumers.append((intake.queue, tag))
        if old is not None and (intake.queue, old) in self._consumers:
            self._consumers.remove((intake.queue, old))
            await intake.queue.cancel(old)

    def _delivery(self, intake: _Intake, message: AbstractIncomingMessage) -> Delivery:
        parked = False

        def unpark() -> None:
            if parked:
                intake.parked -= 1
                intake.parked_by[message.consumer_tag] -= 1
                if not intake.parked_by[message.consumer_tag] and message.consumer_tag != intake.tag:
                    del intake.parked_by[message.consumer_tag]  # a cancelled consumer, done with

        acks = self._channel_acks(message)
        tag = message.delivery_tag
        assert tag is not None, "consumers here always acknowledge"
        acks.delivered(tag)

        async def ack() -> None:
            unpark()
            try:
                await acks.ack(tag)
            except _BROKER_ERRORS:
                # The channel died with the connection: RabbitMQ will redeliver the
                # message, and the version check drops the duplicate.
                log.warning("ack lost with the channel; the message will be redelivered")

        async def requeue() -> None:
            unpark()
            try:
                await acks.requeue(tag)
            except _BROKER_ERRORS:
                log.warning("requeue lost with the channel; RabbitMQ requeues it anyway")

        async def park() -> bool:
            nonlocal parked
            if intake.parked >= intake.waiting_room:
                return False
            parked = True
            intake.parked += 1
            intake.parked_by[message.consumer_tag] += 1
            await self._rotate(intake)
            return True

        return Delivery(
            queue=intake.name,
            body=message.body,
            routing_key=message.routing_key or "",
            message_id=message.message_id,
            headers=dict(message.headers or {}),
            priority=message.priority,
            redelivered=bool(message.redelivered),
            _ack=ack,
            _requeue=requeue,
            _park=park,
        )

    def _channel_acks(self, message: AbstractIncomingMessage) -> ChannelAcks:
        """The acks of the channel that delivered ``message`` (a reconnect makes a new one)."""
        acks = self._acks
        if acks is None or acks.channel is not message.channel:
            acks = self._acks = ChannelAcks(message.channel)
        return acks

    async def _rotate(self, intake: _Intake) -> None:
        """Renew the consumer while half its prefetch is parked.

        Parks are counted by consumer tag, not against "the current consumer":
        a new consumer's first deliveries can be parked before its subscription
        returns, and must still count.
        """
        if intake.rotating:
            return
        intake.rotating = True
        try:
            while (
                not self._stop.is_set()
                and intake.tag is not None
                and intake.parked_by[intake.tag] * 2 >= intake.prefetch
            ):
                await self._subscribe(intake)
        except _BROKER_ERRORS:
            # The parked deliveries keep counting against the prefetch: the
            # worker takes in less, which is safe.
            log.warning("could not renew the consumer of %s", intake.name, exc_info=True)
        finally:
            intake.rotating = False

    async def _cancel_consumers(self) -> None:
        consumers, self._consumers = self._consumers, []
        for queue, tag in consumers:
            try:
                await queue.cancel(tag)
            except _BROKER_ERRORS:
                log.debug("could not cancel consumer %s", tag, exc_info=True)

    async def stop_consuming(self) -> None:
        self._stop.set()
        await self._cancel_consumers()

    async def depths(self) -> dict[str, int]:
        if self._publish_channel is None:
            raise BrokerError("the broker is not connected")
        topo = self.topology
        # Straight to the underlying channel: aio-pika's robust channel caches its
        # declarations, and a cached declare-ok carries the count of back then.
        channel = await self._publish_channel.get_underlay_channel()
        found = {}
        try:
            # The app's queue is there once this process consumes (a client declares none).
            events = topo.event_queues if self._app_declared else (topo.signals_queue, topo.unrouted_queue)
            for name in (*topo.task_queues, *events, topo.dead_letter_queue):
                declared = await channel.queue_declare(name, passive=True)
                found[name] = declared.message_count or 0
        except _BROKER_ERRORS as exc:
            raise BrokerError(f"cannot read queue depths: {exc or type(exc).__name__}") from exc
        return found

    async def purge_dead_letters(self, older_than: float | None) -> int:
        if self._publish_channel is None:
            raise BrokerError("the broker is not connected")
        queue = await self._publish_channel.get_queue(self.topology.dead_letter_queue)
        purged = 0
        # The queue is in arrival order: stop at the first message young enough to keep.
        while (message := await queue.get(fail=False)) is not None:
            stamp = message.timestamp.timestamp() if message.timestamp else None
            if older_than is None or (stamp is not None and stamp < older_than):
                await message.ack()
                purged += 1
            else:
                await message.nack(requeue=True)
                break
        return purged

    async def dead_lettered(self) -> list[tuple[bytes, Mapping[str, Any]]]:
        if self._publish_channel is None:
            raise BrokerError("the broker is not connected")
        queue = await self._publish_channel.get_queue(self.topology.dead_letter_queue)
        drained: list[tuple[bytes, Mapping[str, Any]]] = []
        while (message := await queue.get(fail=False)) is not None:
            drained.append((message.body, dict(message.headers or {})))
            await message.ack()
        return drained


class _Intake:
    """One queue's current consumer and the deliveries parked in the waiting room."""

    def __init__(
        self,
        name: str,
        queue: AbstractQueue,
        prefetch: int,
        waiting_room: int,
        on_delivery: DeliveryHandler,
    ) -> None:
        self.name = name
        self.queue = queue
        self.prefetch = prefetch
        self.waiting_room = waiting_room
        self.on_delivery = on_delivery
        self.tag: str | None = None
        self.parked = 0
        """Parked deliveries of this queue, whichever consumer delivered them."""
        self.parked_by: collections.Counter[str | None] = collections.Counter()
        """Parked deliveries by the tag of the consumer that delivered them."""
        self.rotating = False
