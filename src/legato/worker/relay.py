"""The outbox relay: publishes what a crashed process committed but never sent.

After a commit the committing process publishes its own outbox rows at once.
Rows older than ``grace`` were orphaned -- their process died between commit
and publish, or the broker was down -- and the relay publishes them. A row
may thus be published twice; the run's version check drops the duplicate.
"""

from __future__ import annotations

import logging

import anyio

from legato.broker.base import Broker
from legato.clock import Clock
from legato.errors import BrokerError
from legato.store.ports import OutboxStore

log = logging.getLogger("legato.relay")


class OutboxRelay:
    def __init__(
        self,
        store: OutboxStore,
        broker: Broker,
        clock: Clock,
        interval: float = 1.0,
        grace: float = 5.0,
        lease: float = 30.0,
        batch: int = 500,
    ) -> None:
        self.store = store
        self.broker = broker
        self.clock = clock
        self.interval = interval
        self.grace = grace
        self.lease = lease
        self.batch = batch
        self.relayed = 0

    async def run(self) -> None:
        while True:
            sent = await self.relay_once()
            if sent < self.batch:
                await anyio.sleep(self.interval)

    async def relay_once(self) -> int:
        now = self.clock.now()
        messages = await self.store.claim_outbox(now - self.grace, now, self.lease, self.batch)
        if not messages:
            return 0
        try:
            await self.broker.publish(messages)
        except BrokerError as exc:
            log.warning("outbox relay could not publish %d messages: %s", len(messages), exc)
            # Give the claim back, so that the next pass (once the broker is back)
            # publishes them, not the first one after the lease.
            await self.store.claim_outbox_rows([m.id for m in messages], now)
            return 0
        await self.store.outbox_done([m.id for m in messages])
        self.relayed += len(messages)
        log.info("relayed %d orphaned outbox messages", len(messages))
        return len(messages)
