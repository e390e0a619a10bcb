"""Waiting for the database and the broker when a worker starts.

Workers are often started together with their servers (a deploy, a node
reboot, a database failover), so a server that is down or still starting is
waited for, with backoff and a line per attempt, for a bounded time
(``startup_timeout``). Past it the worker exits with the last error, one line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from legato.clock import Clock
from legato.errors import BrokerError, StoreError

log = logging.getLogger("legato.worker")

T = TypeVar("T")

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 5.0


class Patience:
    """One deadline shared by every step of a start."""

    def __init__(self, timeout: float, clock: Clock) -> None:
        self.clock = clock
        self.deadline = clock.monotonic() + timeout

    async def wait_for(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()`` until it gets through an outage, or the deadline passes."""
        backoff = FIRST_BACKOFF
        tries = 1
        while True:
            try:
                return await attempt()
            except (StoreError, BrokerError) as exc:
                left = self.deadline - self.clock.monotonic()
                if left <= 0:
                    raise
                pause = min(backoff, left)
                log.warning(
                    "waiting for %s (attempt %d): %s; trying again in %.1fs (giving up in %.0fs)",
                    what,
                    tries,
                    exc,
                    pause,
                    left,
                )
                await anyio.sleep(pause)
                backoff = min(backoff * 2, MAX_BACKOFF)
                tries += 1
