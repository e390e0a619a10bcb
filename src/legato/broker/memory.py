"""The in-process broker of the embedded default.

Same contract as RabbitMQ (tests/contract), minus durability: messages live
in this process only. It is for ``legato demo``, development and tests; the
outbox in the store covers what a crash would lose.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from legato.broker.base import Delivery, DeliveryHandler, Topology
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


class _Queue:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ready: deque[_Message] = deque()
        self.unacked = 0
        """Unsettled deliveries that count against the prefetch."""
        self.parked = 0
        """Unsettled deliveries in the consumer's waiting room."""


class MemoryBroker:
    def __init__(self, topology: Topology | None = None, clock: Clock | None = None) -> None:
        self.topology = topology or Topology()
        self.clock = clock or SystemClock()
        self._queues: dict[str, _Queue] = {}
        self._changed = asyncio.Event()
        self._consuming = False
        self._stopped = asyncio.Event()
        self._tags = itertools.count()
        self._waiting_room = 0

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
        self._changed.set()

    async def connect(self) -> None:
        topo = self.topology
        for name in (*topo.task_queues, topo.triggers_queue, topo.dead_letter_queue):
            self._queue(name)

    async def close(self) -> None:
        await self.stop_consuming()

    async def ping(self) -> None:
        return None

    async def publish(self, messages: Sequence[OutboxMessage]) -> None:
        for message in messages:
            if message.kind == "dead_letter":
                queue = self.topology.dead_letter_queue
            else:
                queue = self.topology.task_queue(message.priority)
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
        self._put(
            self.topology.triggers_queue,
            _Message(body, name, message_id, dict(headers or {}), priority, at=self.clock.now()),
        )

    async def republish(
        self, queue: str, routing_key: str, body: bytes, message_id: str | None, headers: Mapping[str, Any]
    ) -> None:
        level = self.topology.priority_of(queue)
        target = queue if level is not None else self.topology.triggers_queue
        self._put(
            target,
            _Message(
                body,
                routing_key,
                message_id,
                dict(headers),
                int(level) if level is not None else None,
                at=self.clock.now(),
            ),
        )

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
        names = (*self.topology.task_queues, self.topology.triggers_queue)
        try:
            while self._consuming:
                self._changed.clear()
                for name in names:
                    queue = self._queue(name)
                    while queue.ready and queue.unacked < prefetch and self._consuming:
                        message = queue.ready.popleft()
                        queue.unacked += 1
                        on_delivery(self._delivery(queue, message))
                await self._wait_for_change()
        finally:
            self._consuming = False

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

        def settle() -> None:
            if parked:
                queue.parked -= 1
            else:
                queue.unacked -= 1

        async def ack() -> None:
            settle()
            self._changed.set()

        async def requeue() -> None:
            settle()
            message.redelivered = True
            self._put(queue.name, message, front=True)

        async def park() -> bool:
            nonlocal parked
            if queue.parked >= self._waiting_room:
                return False
            parked = True
            queue.parked += 1
            queue.unacked -= 1
            self._changed.set()
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
        return {name: len(queue.ready) for name, queue in self._queues.items()}

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
