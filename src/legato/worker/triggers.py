"""Events that start runs, and signals sent as messages."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from legato.app import App, UnknownWorkflow
from legato.broker.base import (
    APP_HEADER,
    PRIORITY_HEADER,
    SIGNAL_ROUTING_KEY,
    STARTED_HEADER,
    Broker,
    Delivery,
)
from legato.clock import Clock
from legato.engine import Engine, Local
from legato.errors import KeyRetired, RunNotFound
from legato.machine.commands import Rejection
from legato.machine.definition import Priority
from legato.machine.events import SignalReceived
from legato.machine.signals import EarlySignal
from legato.messages import MalformedMessage, decode_json_object
from legato.store.rows import storable_text
from legato.worker.handover import Handover
from legato.worker.poison import dead_letter_message

log = logging.getLogger("legato.worker")

TRACE_HEADERS = ("traceparent", "tracestate")


def event_priority(headers: Mapping[str, Any], amqp_priority: int | None) -> Priority | None:
    """The priority an event asks for: the header wins, then the AMQP property.

    The AMQP priority property can only raise a run's priority: clients report
    0 when a publisher set none, so 0 must mean "the workflow's default".
    1-4 is normal, 5 and above high; lowering a run's priority takes the header.
    """
    raw = headers.get(PRIORITY_HEADER)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if raw is not None:
        return Priority.parse(raw)
    if not amqp_priority:
        return None
    return Priority.HIGH if amqp_priority >= 5 else Priority.NORMAL


def event_key(delivery: Delivery) -> str:
    """The idempotency key of an event: its ``message_id``, else its content."""
    if delivery.message_id:
        return storable_text(delivery.message_id)
    digest = hashlib.sha256(delivery.routing_key.encode() + b"\0" + delivery.body).hexdigest()
    return f"sha256:{digest}"


class TriggerHandler:
    """Handles the deliveries of the event queues: the app's events, signals,
    and the events no app wants (docs/operations.md, "Several apps on one namespace")."""

    def __init__(
        self,
        app: App,
        engine: Engine,
        broker: Broker,
        clock: Clock,
        local: Local | None = None,
        handover: Handover | None = None,
    ) -> None:
        self.local = local
        self.app = app
        self.engine = engine
        self.broker = broker
        self.clock = clock
        self.handover = handover or Handover(app, clock, pause=1.0, window=0.0)

    async def handle(self, delivery: Delivery) -> None:
        if delivery.routing_key == SIGNAL_ROUTING_KEY:
            await self._signal(delivery)
            return
        workflows = self.app.triggered_by(delivery.routing_key)
        if not workflows and delivery.queue == self.broker.topology.unrouted_queue:
            # No app's queue was bound to this event's name when it was published.
            # (If this app wants it, it came before the app's first worker: it is
            # handled below like any of the app's events.)
            await self._poison(delivery, f"no workflow is triggered by event {delivery.routing_key!r}")
            return
        try:
            body = decode_json_object(delivery.body)
        except MalformedMessage as exc:
            await self._poison(delivery, f"event {delivery.routing_key!r}: {exc}")
            return
        if not workflows:
            await self._hand_over(delivery)
            return
        workflows = [w for w in workflows if w.name not in _started_already(delivery, self.app.name)]
        if not workflows:
            await delivery.ack()  # the HTTP ingress of this app started them
            return
        try:
            priority = event_priority(delivery.headers, delivery.priority)
        except ValueError as exc:
            await self._poison(delivery, f"event {delivery.routing_key!r}: {exc}")
            return
        trace = trace_context(delivery.headers)
        key = event_key(delivery)
        for workflow in workflows:
            try:
                started = await self.engine.start(
                    workflow.name,
                    body,
                    key=key,
                    priority=priority,
                    trace_context=trace or None,
                    local=self.local,
                )
            except KeyRetired as retired:
                # A redelivery of an event whose run retention removed: still a duplicate.
                log.info(
                    "event %s (key %s) already started run %s (removed)",
                    delivery.routing_key,
                    key,
                    retired.run_id,
                )
                continue
            if not started.created:
                log.info(
                    "event %s (key %s) already started run %s",
                    delivery.routing_key,
                    key,
                    started.run.id,
                )
        await delivery.ack()

    async def _signal(self, delivery: Delivery) -> None:
        try:
            body = decode_json_object(delivery.body)
            run_id, name = body["run_id"], body["name"]
            data = body.get("data") or {}
            if not isinstance(run_id, str) or not isinstance(name, str) or not isinstance(data, dict):
                raise MalformedMessage("run_id and name must be strings, data an object")
            early = EarlySignal(body.get("early") or EarlySignal.BUFFER)
        except (MalformedMessage, KeyError, ValueError) as exc:
            await self._poison(delivery, f"signal message: {exc} (expected {{run_id, name, data}})")
            return
        actor = storable_text(str(body.get("actor") or f"amqp:{delivery.message_id or 'anonymous'}"))
        try:
            outcome = await self.engine.apply(run_id, SignalReceived(name, data, actor, early))
        except RunNotFound as exc:
            await self._poison(delivery, f"signal {name!r}: {exc}")
            return
        except UnknownWorkflow as exc:
            # The run is another app's (or a newer version's): one of its workers takes it.
            if not await self.handover.pass_over(delivery, f"signal {name!r} to a run of another app"):
                await self._poison(delivery, f"signal {name!r}: {exc}; no worker that has it took the signal")
            return
        if isinstance(outcome, Rejection):
            await self._poison(delivery, f"signal {name!r} refused: {outcome.reason}")
            return
        await delivery.ack()

    async def _hand_over(self, delivery: Delivery) -> None:
        """An event bound to this app's queue by another version of the app (a
        rolling deploy that added a workflow): a worker of that version takes it."""
        if not await self.handover.pass_over(delivery, f"event {delivery.routing_key!r}"):
            await self._poison(
                delivery,
                f"no workflow of app {self.app.name!r} is triggered by event {delivery.routing_key!r} "
                f"(its queue is bound to it, but no worker that has such a workflow took it "
                f"within {self.handover.window:.0f}s)",
            )

    async def _poison(self, delivery: Delivery, reason: str) -> None:
        await dead_letter_message(
            delivery, reason, self.engine.store, self.broker, self.clock, self.engine.observer
        )


def _started_already(delivery: Delivery, app: str) -> set[str]:
    """The workflows whose runs this app's HTTP ingress started for this event."""
    if _text(delivery.headers.get(APP_HEADER, "")) != app:
        return set()
    return set(filter(None, _text(delivery.headers.get(STARTED_HEADER, "")).split(",")))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def trace_context(headers: Mapping[str, Any]) -> dict[str, str]:
    """The W3C trace headers of a message, those that can be one: printable
    ASCII text. Anything else is ignored (a new trace starts), as a malformed
    ``traceparent`` is by the propagator."""
    found = {}
    for name in TRACE_HEADERS:
        value = headers.get(name)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if isinstance(value, str) and value.isascii() and value.isprintable():
            found[name] = value
    return found
