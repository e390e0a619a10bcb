"""Holding a lease while a step runs (tasks with ``heartbeat_timeout``).

The worker takes the lease just before the handler, then settles the broker
delivery: from then on the lease, not the delivery, says the step is being
run, so RabbitMQ's ``consumer_timeout`` no longer bounds the step. A keeper
task renews the lease every third of the timeout, with the details the handler
last gave ``ctx.heartbeat``; a handler that never calls it is kept alive all the
same. When the worker dies, the renewals stop, the lease's heartbeat timer
fires and the step is dispatched again, once (worker/timers.py).

A lease costs three statements per attempt (take, release, and a renewal per
third of the timeout) beyond what every step costs; a task without
``heartbeat_timeout`` pays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Mapping

import anyio

from legato.clock import Clock
from legato.errors import LegatoError, StoreError
from legato.interruption import Interruption
from legato.machine.values import JSON, unstorable
from legato.store.base import LeaseDetails, LeaseEnd
from legato.store.ports import LeaseStore

log = logging.getLogger("legato.worker")

MIN_GAP = 0.1
"""Of the timeout: the least time between two writes, however often the handler beats."""


def holder_id() -> str:
    """This worker, as a lease holder: host, process and a nonce (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class StepLease:
    """One attempt's lease, as the handler sees it through ``ctx.heartbeat``."""

    def __init__(
        self,
        store: LeaseStore,
        clock: Clock,
        key: tuple[str, int, int],
        holder: str,
        timeout: float,
        stop: Interruption,
    ) -> None:
        self.store = store
        self.clock = clock
        self.run_id, self.seq, self.attempt = key
        self.holder = holder
        self.timeout = timeout
        self.stop = stop
        self.previous: LeaseDetails | None = None
        self.renewals = 0
        self._pending: LeaseDetails | None = None
        self._wake = anyio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def beat(self, details: Mapping[str, JSON] | None = None) -> None:
        """Record progress; any thread may call it. Written within a third of the timeout,
        and at once when called from the event loop."""
        if details is not None:
            problem = unstorable(dict(details))
            if problem is not None:
                raise LegatoError(f"heartbeat details cannot be stored: {problem}")
            self._pending = dict(details)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running is self._loop:
            self._wake.set()

    async def acquire(self) -> bool:
        grant = await self.store.acquire_lease(
            self.run_id, self.seq, self.attempt, self.holder, self.clock.now(), self.timeout
        )
        if grant is None:
            return False
        self.previous = grant.details
        return True

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Renew the lease while the body (the handler) runs."""
        self._loop = asyncio.get_running_loop()
        async with anyio.create_task_group() as keeper:
            keeper.start_soon(self._keep)
            try:
                yield
            finally:
                keeper.cancel_scope.cancel()

    async def _keep(self) -> None:
        interval = self.timeout / 3
        while True:
            with anyio.move_on_after(interval):
                await self._wake.wait()
            self._wake = anyio.Event()
            details, self._pending = self._pending, None
            try:
                held = await self.store.renew_lease(
                    self.run_id, self.seq, self.attempt, self.holder, self.clock.now(), self.timeout, details
                )
            except StoreError as exc:
                # The lease may run out meanwhile; then the step runs again (at least once).
                log.warning("could not renew the lease of step #%d of run %s: %s", self.seq, self.run_id, exc)
                if details is not None and self._pending is None:
                    self._pending = details
                continue
            self.renewals += 1
            if not held:
                self.stop.interrupt("its lease ran out and the step was dispatched again")
                return
            await anyio.sleep(self.timeout * MIN_GAP)

    async def release(self, end: LeaseEnd) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self.store.release_lease(
                    self.run_id, self.seq, self.attempt, self.holder, end, self.clock.now()
                )
            except StoreError as exc:
                # Harmless: the heartbeat timer finds the attempt over and goes.
                log.warning(
                    "could not release the lease of step #%d of run %s: %s", self.seq, self.run_id, exc
                )
