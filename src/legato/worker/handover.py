"""Deliveries for another version of the app, or another app: handed over.

In a rolling deploy the old and the new version of an app share its queues,
so an old worker can receive an event only the new version triggers on, or a
step of a workflow (version) only the new version has; a signal queue is
shared by every app. Such a delivery is not this worker's to refuse: it is
given back after a pause (so that the worker does not spin on it and another
consumer gets its turn), for ``window`` seconds from the first time this
worker saw it. After that no worker that serves it is coming, and it is
dead-lettered with its reason, where an operator sees it and can replay it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict

import anyio

from legato.app import App
from legato.broker.base import Delivery
from legato.clock import Clock

log = logging.getLogger("legato.worker")

REMEMBERED = 10_000
"""Deliveries whose first sighting is remembered; the oldest are forgotten first."""


class Handover:
    def __init__(self, app: App, clock: Clock, pause: float, window: float) -> None:
        self.app = app
        self.clock = clock
        self.pause = pause
        self.window = window
        self._first_seen: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._noted: set[str] = set()

    async def pass_over(self, delivery: Delivery, what: str) -> bool:
        """Give ``delivery`` back for a worker that serves it, after a pause;
        False (nothing done) once it has been handed over for ``window`` seconds."""
        key = _identity(delivery)
        now = self.clock.monotonic()
        first = self._first_seen.setdefault(key, now)
        if now - first >= self.window:
            self._first_seen.pop(key, None)
            return False
        while len(self._first_seen) > REMEMBERED:
            self._first_seen.popitem(last=False)
        if what not in self._noted and len(self._noted) < REMEMBERED:
            self._noted.add(what)
            log.info(
                "%s is not for this worker (app %s, workflows %s): handed over to a worker "
                "that serves it (dead-lettered if none takes it within %.0fs)",
                what,
                self.app.name,
                ", ".join(self.app.names()) or "none",
                self.window,
            )
        await anyio.sleep(self.pause)
        await delivery.requeue()
        return True


def _identity(delivery: Delivery) -> tuple[str, str, str]:
    if delivery.message_id:
        return delivery.queue, delivery.routing_key, delivery.message_id
    return delivery.queue, delivery.routing_key, hashlib.sha256(delivery.body).hexdigest()
