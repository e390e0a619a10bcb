"""The in-process broker of the embedded default.

Same contract as RabbitMQ (tests/contract), minus durability: messages live
in this process only. It is for ``legato demo``, development and tests; the
outbox in the store covers what a crash would lose.

Events are routed as RabbitMQ routes them: to the queue of every app bound to
the event's name, signals to the signals queue, and an event no queue is bound
to to the unrouted queue. Brokers made with :meth:`MemoryBroker.sibling` share
queues and bindings, as processes connected to one RabbitMQ do.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from legato.broker.base import APP_HEADER, SIGNAL_ROUTING_KEY, Delivery, DeliveryHandler, Topology
from legato.clock import Clock, SystemClock
from legato.outbox import OutboxMessage


@dataclass
class _Message:
    body: bytes
    routing_key: str
    message_id: str | None
    headers: dict[str, Any]
    priority: int | None
    at: float = field(kw_only=True)
    """When it was published (wall clock): what purging dead letters goes by."""
    redelivered: bool = False
    given_back_by: int | None = None
    """The consumer that gave it back: another consumer of the queue gets it
    first, as RabbitMQ's round robin would have it."""


class _Queue:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ready: deque[_Message] = deque()
        self.consumers: set[int] = set()

    def take(self, consumer: int) -> _Message | None:
        """The first ready message for ``consumer``: not one it gave back itself
        while another consumer of the queue could take it."""
        for index, message in enumerate(self.ready):
            if message.given_back_by != consumer or self.consumers == {consumer}:
                del self.ready[index]
                message.given_back_by = None
                return message
        return None


@dataclass
class _Held:
    """One consumer's unsettled deliveries of one queue."""

    unacked: int = 0
    """Those that count against the prefetch."""
    parked: int = 0
    """Those in the consumer's waiting room."""


_CONSUMERS = itertools.count()


class _Server:
    """What brokers connected to one in-process "server" share."""

    def __init__(self) -> None:
        self.queues: dict[str, _Queue] = {}
        self.bindings: dict[str, frozenset[str]] = {}
        """Event names bound to each event queue (its routing keys)."""
        self.listeners: list[asyncio.Event] = []
        """One per broker: each consumer clears its own, so none misses a change."""

    def changed(self) -> None:
        for listener in self.listeners:
            listener.set()


class MemoryBroker:
    def __init__(
        self, topology: Topology | None = None, clock: Clock | None = None, *, server: _Server | None = None
    ) -> None:
        self.topology = topology or Topology()
        self.clock = clock or SystemClock()
        self._server = server or _Server()
        self._queues = self._server.queues
        self._changed = asyncio.Event()
        self._server.listeners.append(self._changed)
        self._id = next(_CONSUMERS)
        self._held: dict[str, _Held] = {}
        self._consuming = False
        self._stopped = asyncio.Event()
        self._tags = itertools.count()
        self._waiting_room = 0

    def sibling(self, topology: Topology) -> MemoryBroker:
        """Another broker on the same queues and bindings (another app's worker, say)."""
        return MemoryBroker(topology, self.clock, server=self._server)

    def _queue(self, name: str) -> _Queue:
        if name not in self._queues:
            self._queues[name] = _Queue(name)
        return self._queues[name]

    def _put(self, queue: str, message: _Message, front: bool = False) -> None:
        target = self._queue(queue)
        if front:
            target.ready.appendleft(message)
        else:
            target.ready.append(message)
        self._server.changed()

    def _route(self, message: _Message) -> None:
        """Where the events exchange sends an event: every queue bound to its name, else unrouted."""
        bound = [queue for queue, keys in self._server.bindings.items() if message.routing_key in keys]
        if not bound:
            bound = [self.topology.unrouted_queue]
        for name in bound:
            copy = message if len(bound) == 1 else replace(message, headers=dict(message.headers))
            self._put(name, copy)

    async def connect(self) -> None:
        topo = self.topology
        for name in (*topo.task_queues, topo.signals_queue, topo.unrouted_queue, topo.dead_letter_queue):
            self._queue(name)
        self._bind(topo.signals_queue, {SIGNAL_ROUTING_KEY})

    async def bind_app(self) -> None:
        for name in self.topology.task_queues:
            self._queue(name)
        self._bind(self.topology.app_queue, self.topology.events)

    def _bind(self, queue: str, events: Iterable[str]) -> None:
        self._queue(queue)
        # Bindings are only ever added, as on RabbitMQ.
        self._server.bindings[queue] = self._server.bindings.get(queue, frozenset()) | frozenset(events)

    async def close(self) -> None:
        await self.stop_consuming()

    async def ping(self) -> None:
        return None

    async def publish(self, messages: Sequence[OutboxMessage]) -> None:
        for message in messages:
            if message.kind == "dead_letter":
                queue = self.topology.dead_letter_queue
            else:
                app = message.headers.get(APP_HEADER) or self.topology.app
                queue = self.topology.task_queue(message.priority, app)
            self._put(
                queue,
                _Message(
                    message.body, queue, None, dict(message.headers), message.priority, at=self.clock.now()
                ),
            )

    async def publish_event(
        self,
        name: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        priority: int | None = None,
    ) -> None:
        self._route(_Message(body, name, message_id, dict(headers or {}), priority, at=self.clock.now()))

    async def republish(
        self, queue: str, routing_key: str, body: bytes, message_id: str | None, headers: Mapping[str, Any]
    ) -> None:
        route = self.topology.task_route(queue)
        message = _Message(
            body,
            routing_key,
            message_id,
            dict(headers),
            int(route[1]) if route is not None else None,
            at=self.clock.now(),
        )
        if route is None:
            self._route(message)
        else:
            self._put(self.topology.task_queue(route[1], route[0]), message)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        headers = {
            **delivery.headers,
            "x-legato-reason": reason,
            "x-legato-queue": delivery.queue,
            "x-legato-routing-key": delivery.routing_key,
        }
        self._put(
            self.topology.dead_letter_queue,
            _Message(
                delivery.body,
                delivery.routing_key,
                delivery.message_id,
                headers,
                delivery.priority,
                at=self.clock.now(),
            ),
        )

    async def consume(self, on_delivery: DeliveryHandler, prefetch: int, waiting_room: int = 0) -> None:
        self._waiting_room = waiting_room
        self._consuming = True
        self._stopped.clear()
        topo = self.topology
        self._bind(topo.app_queue, topo.events)
        queues = [self._queue(name) for name in (*topo.task_queues, *topo.event_queues)]
        for queue in queues:
            queue.consumers.add(self._id)
        try:
            while self._consuming:
                self._changed.clear()
                for queue in queues:
                    held = self._held.setdefault(queue.name, _Held())
                    while held.unacked < prefetch and self._consuming:
                        message = queue.take(self._id)
                        if message is None:
                            break
                        held.unacked += 1
                        on_delivery(self._delivery(queue, message))
                await self._wait_for_change()
        finally:
            self._consuming = False
            for queue in queues:
                queue.consumers.discard(self._id)
            self._server.changed()  # what it gave back is for the others now

    async def _wait_for_change(self) -> None:
        changed = asyncio.ensure_future(self._changed.wait())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({changed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            stopped.cancel()

    def _delivery(self, queue: _Queue, message: _Message) -> Delivery:
        parked = False
        held = self._held[queue.name]

        def settle() -> None:
            if parked:
                held.parked -= 1
            else:
                held.unacked -= 1

        async def ack() -> None:
            settle()
            self._server.changed()

        async def requeue() -> None:
            settle()
            message.redelivered = True
            message.given_back_by = self._id
            self._put(queue.name, message, front=True)

        async def park() -> bool:
            nonlocal parked
            if held.parked >= self._waiting_room:
                return False
            parked = True
            held.parked += 1
            held.unacked -= 1
            self._server.changed()
            return True

        return Delivery(
            queue=queue.name,
            body=message.body,
            routing_key=message.routing_key,
            message_id=message.message_id,
            headers=message.headers,
            priority=message.priority,
            redelivered=message.redelivered,
            _ack=ack,
            _requeue=requeue,
            _park=park,
        )

    async def stop_consuming(self) -> None:
        self._consuming = False
        self._stopped.set()

    async def depths(self) -> dict[str, int]:
        topo = self.topology
        names = (*topo.task_queues, *topo.event_queues, topo.dead_letter_queue)
        return {name: len(self._queues[name].ready) for name in names if name in self._queues}

    async def purge_dead_letters(self, older_than: float | None) -> int:
        queue = self._queue(self.topology.dead_letter_queue)
        kept = deque(m for m in queue.ready if older_than is not None and m.at >= older_than)
        purged = len(queue.ready) - len(kept)
        queue.ready = kept
        return purged

    async def dead_lettered(self) -> list[tuple[bytes, Mapping[str, Any]]]:
        queue = self._queue(self.topology.dead_letter_queue)
        drained: list[tuple[bytes, Mapping[str, Any]]] = [(m.body, m.headers) for m in queue.ready]
        queue.ready.clear()
        return drained
