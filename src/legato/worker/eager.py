"""Eager dispatch: run the next step of a run in this process, skipping the broker.

When a transition commits a task message and this worker has a free slot and
nothing else waiting, the message goes straight into the local dispatcher,
with the run that was just committed, instead of a round trip through
RabbitMQ (publish, confirm, deliver, ack) and a reload from the database.
Temporal does the same with eager activities.

Durability does not change: the task's outbox row was committed with the
transition and stays until the local step is settled. Settling it (the ack)
forgets the row; giving it back (shutdown) publishes it. If the worker dies
first, another worker's outbox relay publishes the row after ``relay_grace``.
While a local step is running, a lease keeper renews the claim on its row, so
the relay does not duplicate a live step (short of an event loop stalled for
half of ``relay_grace``, and then the step is merely delivered twice).

How it keeps priorities and limits (docs/flow-control.md):

* a kept step joins the dispatcher in its priority level, in arrival order
  with the deliveries from the broker, so the 8:4:1 weighting between levels
  holds and no run of the same level is starved;
* it waits for a slot like any delivery, and at most one wave of them
  (``concurrency``) is kept; beyond that they are published for other replicas;
* it passes admission (rate and concurrency limits) like any other step, and
  one that would have to wait at a limit goes to the broker rather than wait
  here, where the waiting room bounds it and any replica can take it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar

import anyio

from legato.broker.base import Broker, Delivery, Topology
from legato.clock import Clock
from legato.errors import BrokerError, StoreError
from legato.machine.run import Run
from legato.outbox import OutboxMessage
from legato.store.ports import OutboxStore
from legato.worker.dispatch import Dispatcher

log = logging.getLogger("legato.worker")

HINT_FRESH_FOR = 0.5
"""Seconds a local step trusts the run it was made with. A step that waited
longer (behind a backlog) reads the run again, so that an operator's cancel
in the meantime is seen before the handler runs."""


@dataclass(eq=False)
class LocalDelivery(Delivery):
    """A task this process made (eager dispatch), with the run its transition committed.

    The run is the worker's business, not the broker's: it rides here, on the
    worker's own kind of delivery, and saves a read when it is still fresh.
    """

    local: ClassVar[bool] = True
    run: Run = field(repr=False, kw_only=True)
    made_at: float = field(kw_only=True)
    """When it was made (monotonic clock)."""

    def fresh_run(self, monotonic_now: float) -> Run | None:
        """The run it was made with, unless it waited longer than :data:`HINT_FRESH_FOR`."""
        if monotonic_now - self.made_at > HINT_FRESH_FOR:
            return None
        return self.run


class Eager:
    def __init__(
        self,
        dispatcher: Dispatcher,
        store: OutboxStore,
        broker: Broker,
        clock: Clock,
        claim_for: float,
    ) -> None:
        self.dispatcher = dispatcher
        self.store = store
        self.broker = broker
        self.topology: Topology = broker.topology
        self.clock = clock
        self.claim_for = claim_for
        self._active: dict[int, float] = {}
        """Outbox ids of local steps not settled yet, with when they were taken."""
        self.taken = 0

    @property
    def held(self) -> int:
        """Local steps not settled yet (their outbox rows are claimed here)."""
        return len(self._active)

    def offer(self, message: OutboxMessage, run: Run) -> bool:
        """Take ``message`` to run here, if there is room; False: publish it."""
        dispatcher = self.dispatcher
        if message.kind != "task" or dispatcher.closed:
            return False
        # At most one wave of kept steps waits here; beyond that the broker
        # spreads them over the other replicas.
        if dispatcher.local_buffered >= dispatcher.concurrency:
            return False
        self._active[message.id] = self.clock.now()
        self.taken += 1
        dispatcher.submit(self._delivery(message, run))
        return True

    def _delivery(self, message: OutboxMessage, run: Run) -> LocalDelivery:
        async def ack() -> None:
            self._active.pop(message.id, None)
            await self.store.outbox_done([message.id])

        async def requeue() -> None:
            self._active.pop(message.id, None)
            try:
                await self.broker.publish([message])
                await self.store.outbox_done([message.id])
            except (BrokerError, StoreError) as exc:
                # The row stays in the outbox: the relay publishes it (again).
                log.warning("could not hand a local step back to the broker (%s); the outbox relay will", exc)

        return LocalDelivery(
            queue=self.topology.task_queue(message.priority),
            body=message.body,
            routing_key="",
            message_id=None,
            headers=message.headers,
            priority=message.priority,
            redelivered=False,
            _ack=ack,
            _requeue=requeue,
            run=run,
            made_at=self.clock.monotonic(),
        )

    async def keep_claims(self) -> None:
        """Renew the claim on the outbox rows of local steps that run long."""
        # Rows become the relay's ``claim_for`` after their commit. Renewing every
        # quarter of that, anything older than a quarter, leaves half of it as
        # margin for commit latency and a busy event loop. Should it still run
        # out, the step is published twice: at least once, and the version check
        # drops the second result.
        period = self.claim_for / 4
        while True:
            await anyio.sleep(period)
            now = self.clock.now()
            old = [i for i, taken in self._active.items() if now - taken >= period]
            if old:
                try:
                    await self.store.claim_outbox_rows(old, now + self.claim_for)
                except StoreError as exc:
                    log.warning("could not renew the claim on %d local steps: %s", len(old), exc)
