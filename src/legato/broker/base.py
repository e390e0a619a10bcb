"""The broker port: where events come in and task messages go out.

Every backend passes the same contract suite (tests/contract). The broker is
transport only: it imports nothing of the store or the machine
(tests/unit/test_layers.py), just the vocabularies it carries.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from legato.identifiers import check_namespace
from legato.outbox import OutboxMessage
from legato.priority import Priority

DEFAULT_APP = "default"
"""The name of an app that was given none (``App(name=...)``)."""
APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
"""What an app's name may be: it goes into queue names, and a dot would make them ambiguous."""
APP_HEADER = "x-legato-app"
"""The app whose engine wrote a message: its tasks go to that app's queues."""
STARTED_HEADER = "x-legato-started"
"""On an event the HTTP ingress of app ``x-legato-app`` accepted: the workflows
(comma-separated) whose runs it started already."""
PRIORITY_HEADER = "x-legato-priority"
"""An event's priority: ``high``, ``normal`` or ``low``."""


@dataclass(frozen=True)
class Topology:
    """The names legato declares, all derived from one namespace.

    Events published on ``events_exchange`` all pass to ``routes_exchange``,
    where each app's queue is bound to the event names its workflows trigger
    on; an event no queue is bound to goes to its alternate exchange, and from
    there to ``unrouted_queue``, whose consumers dead-letter it. So several
    apps (and an old and a new version of one app) share a namespace, each
    consuming only its own events. Tests give every test its own namespace,
    so they cannot see each other.
    """

    namespace: str = "legato"
    queue_type: str = "classic"
    """``classic`` or ``quorum`` (for clusters; see docs/operations.md)."""
    app: str = DEFAULT_APP
    """The app this process consumes events for (:attr:`legato.App.name`)."""
    events: frozenset[str] = frozenset()
    """The event names the app's workflows trigger on: its queue's bindings."""

    def serving(self, app: str, events: Iterable[str]) -> Topology:
        """This topology, for a process that consumes ``app``'s events."""
        return replace(self, app=app, events=frozenset(events))

    def __post_init__(self) -> None:
        check_namespace(self.namespace)

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def routes_exchange(self) -> str:
        return f"{self.namespace}.routes"

    @property
    def unrouted_exchange(self) -> str:
        return f"{self.namespace}.unrouted"

    @property
    def unrouted_queue(self) -> str:
        return f"{self.namespace}.unrouted"

    @property
    def signals_queue(self) -> str:
        return f"{self.namespace}.signals"

    @property
    def app_queue(self) -> str:
        return f"{self.namespace}.app.{self.app}"

    @property
    def event_queues(self) -> tuple[str, ...]:
        """The queues of events (and signals) this process consumes."""
        return (self.app_queue, self.signals_queue, self.unrouted_queue)

    @property
    def legacy_triggers_queue(self) -> str:
        """Where legato 0.x put every event (bound with ``#``); retired on start
        (docs/operations.md, "Several apps on one namespace")."""
        return f"{self.namespace}.triggers"

    @property
    def tasks_exchange(self) -> str:
        return f"{self.namespace}.tasks"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dead"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.namespace}.dead"

    def task_queue(self, priority: int, app: str | None = None) -> str:
        """The task queue of ``priority`` of this app (or of ``app``):
        ``ns.app.NAME.LEVEL``; for the app given no name, the queues of legato
        0.x, ``ns.tasks.LEVEL``."""
        level = Priority(priority).name.lower()
        app = app or self.app
        if app == DEFAULT_APP:
            return f"{self.namespace}.tasks.{level}"
        return f"{self.namespace}.app.{app}.{level}"

    def task_key(self, priority: int, app: str | None = None) -> str:
        """The routing key on the tasks exchange of this app's (or ``app``'s) tasks of ``priority``."""
        level = Priority(priority).name.lower()
        app = app or self.app
        return level if app == DEFAULT_APP else f"{app}.{level}"

    @property
    def task_queues(self) -> tuple[str, ...]:
        return tuple(self.task_queue(p) for p in sorted(Priority, reverse=True))

    def priority_of(self, queue: str) -> Priority | None:
        """The priority level of a task queue of this app; None for any other queue."""
        for level in Priority:
            if queue == self.task_queue(level):
                return level
        return None

    def task_route(self, queue: str) -> tuple[str, Priority] | None:
        """The app and priority of any app's task queue in this namespace; None
        for any other queue (what a replay of a dead-lettered task goes by)."""
        for level in Priority:
            if queue == f"{self.namespace}.tasks.{level.name.lower()}":
                return DEFAULT_APP, level
        prefix = f"{self.namespace}.app."
        app, dot, level_name = queue.removeprefix(prefix).rpartition(".")
        if queue.startswith(prefix) and dot and APP_NAME.fullmatch(app):
            for level in Priority:
                if level_name == level.name.lower():
                    return app, level
        return None


SIGNAL_ROUTING_KEY = "legato.signal"
"""Events with this routing key are signals to a run, not workflow triggers."""


class Room(Protocol):
    """Where a parked delivery waits in the worker: the waiting room
    (:class:`legato.flow.waiting.WaitingRoom`), the one owner of parked deliveries."""

    def left(self, delivery: Delivery) -> None:
        """``delivery`` was settled (acked or given back): it waits here no more."""


@dataclass(eq=False)
class Delivery:
    """A message handed to the worker. Settle it exactly once: ack or requeue."""

    queue: str
    body: bytes
    routing_key: str
    message_id: str | None
    headers: Mapping[str, Any]
    priority: int | None
    redelivered: bool
    _ack: Callable[[], Awaitable[None]] = field(repr=False)
    _requeue: Callable[[], Awaitable[None]] = field(repr=False)
    settled: bool = False
    _park: Callable[[], Awaitable[bool]] | None = field(default=None, repr=False)
    parked: bool = False
    """Outside the prefetch: the broker's waiting room for this queue took it."""
    _room: Room | None = field(default=None, repr=False)
    """The waiting room this delivery was parked in; told when it is settled."""
    local: ClassVar[bool] = False
    """Made by this process (eager dispatch), not delivered by the broker."""

    async def ack(self) -> None:
        if not self.settled:
            self.settled = True
            if self._room is not None:
                self._room.left(self)
            await self._ack()

    async def requeue(self) -> None:
        if not self.settled:
            self.settled = True
            if self._room is not None:
                self._room.left(self)
            await self._requeue()

    async def park(self, room: Room | None = None) -> bool:
        """Say that this delivery waits in the worker (for a rate or concurrency
        limit), in ``room``, and should stop holding back the next ones.

        It stays unsettled -- nothing is acknowledged before it runs -- but the
        broker no longer counts it against the prefetch, as long as the
        broker's waiting room for its queue has space. Returns whether it is
        outside the prefetch now. ``room`` is told when the delivery is settled,
        whoever settles it, so it cannot keep a record of a delivery that is gone.
        """
        if room is not None:
            self._room = room
        if not self.parked and not self.settled and self._park is not None:
            self.parked = await self._park()
        return self.parked


DeliveryHandler = Callable[[Delivery], None]
"""Receives each delivery; must not block (it only hands the delivery on)."""


class Broker(Protocol):
    topology: Topology

    async def connect(self) -> None:
        """Connect and declare the topology (idempotent)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`~legato.errors.BrokerError` when the broker is unreachable."""

    async def publish(self, messages: Sequence[OutboxMessage]) -> None:
        """Publish outbox messages; returns once the broker has confirmed them all."""

    async def publish_event(
        self,
        name: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        priority: int | None = None,
    ) -> None:
        """Publish an event on the events exchange (what an event source does)."""

    async def republish(
        self, queue: str, routing_key: str, body: bytes, message_id: str | None, headers: Mapping[str, Any]
    ) -> None:
        """Publish a dead-lettered message again to where it came from: a task
        queue (by its priority) or the events exchange (by its routing key)."""

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Send a copy of ``delivery`` to the dead-letter queue with ``reason`` in
        its headers; confirmed. The caller acks the original afterwards."""

    async def bind_app(self) -> None:
        """Declare the queue of ``topology.app``, bound to each of ``topology.events``
        (idempotent; bindings are only added). :meth:`consume` does it first too."""

    async def consume(self, on_delivery: DeliveryHandler, prefetch: int, waiting_room: int = 0) -> None:
        """Deliver tasks, and the events of ``topology.app``, signals and the
        events no app wants, to ``on_delivery`` until :meth:`stop_consuming`.

        At most ``prefetch`` unsettled deliveries per queue, not counting up to
        ``waiting_room`` parked ones (:meth:`Delivery.park`) per queue.
        """

    async def stop_consuming(self) -> None:
        """Stop taking new deliveries; unsettled ones stay valid."""

    async def depths(self) -> dict[str, int]:
        """Messages ready in each of legato's queues."""

    async def purge_dead_letters(self, older_than: float | None) -> int:
        """Delete dead-lettered messages older than ``older_than`` (all when None)."""

    async def dead_lettered(self) -> list[tuple[bytes, Mapping[str, Any]]]:
        """Drain the dead-letter queue (body, headers), for inspection and tests."""
