"""From deliveries to running steps: buffering, priorities, concurrency slots.

Deliveries arrive from the broker's consumers (bounded by prefetch) into one
buffer per queue. Whenever a concurrency slot is free, the dispatcher picks
the next delivery by stride scheduling over the queues' weights (see
:mod:`legato.flow.stride`): with a backlog everywhere, high gets 8 picks for
every 4 of normal and 1 of low, so urgent work overtakes a backlog at once
while low priority still moves.

A delivery that must wait for a flow-control limit is *parked* in the waiting
room (:mod:`legato.flow.waiting`): its runner goes on to the next delivery, and
the waiting room :meth:`resubmit`\\ s it, ahead of its queue, when its turn comes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import anyio
from anyio.abc import TaskGroup

from legato.broker.base import Delivery
from legato.flow.stride import DEFAULT_WEIGHTS, Stride, weights_by_level

__all__ = ["DEFAULT_WEIGHTS", "Dispatcher"]


class Dispatcher:
    def __init__(self, concurrency: int, weights: Mapping[str, int] | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.concurrency = concurrency
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self.weight_of = weights_by_level(self.weights)
        self._buffers: Stride[Delivery] = Stride(self.weight_of)
        # fast_acquire: no forced yield when a delivery is there already; the
        # runner goes straight on to the step (it yields at its first await).
        self._available = anyio.Semaphore(0, fast_acquire=True)
        """Counts buffered deliveries: each release wakes exactly one runner."""
        self._closed = False
        self.in_flight = 0
        self.local_buffered = 0
        """Buffered deliveries made by this process (eager dispatch)."""
        self._idle = anyio.Event()
        self._idle.set()

    def submit(self, delivery: Delivery) -> None:
        """Called by the broker for each delivery (and by eager dispatch for the
        next step of a run this process just advanced); never blocks. Within a
        priority level, deliveries go in arrival order, local or not: giving
        local continuations precedence would starve new runs of that level."""
        self.local_buffered += delivery.local
        self._buffers.push(delivery.queue, delivery)
        self._available.release()

    def resubmit(self, delivery: Delivery) -> None:
        """A parked delivery's turn came (the waiting room's :class:`~legato.flow.waiting.Entrance`):
        it goes first in its queue."""
        if not self._closed:
            self.local_buffered += delivery.local
            self._buffers.push(delivery.queue, delivery, front=True)
            self._available.release()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def buffered(self) -> int:
        return len(self._buffers)

    async def run(self, group: TaskGroup, handle: Callable[[Delivery], Awaitable[None]]) -> None:
        """Run ``concurrency`` runners, each taking the next delivery as it frees
        up, until :meth:`close`. A fixed set of runners costs less per step than
        a task per delivery, and the concurrency limit is simply their number."""
        for number in range(self.concurrency):
            group.start_soon(self._runner, handle, name=f"runner-{number}")

    async def _runner(self, handle: Callable[[Delivery], Awaitable[None]]) -> None:
        while True:
            await self._available.acquire()
            if self._closed:
                self._available.release()  # wake the next runner, which stops too
                return
            delivery = self._buffers.pick()
            if delivery is None:
                continue  # taken back by close() or parked meanwhile
            self.local_buffered -= delivery.local
            self.in_flight += 1
            self._idle = anyio.Event()
            try:
                await handle(delivery)
            finally:
                self.in_flight -= 1
                if self.in_flight == 0:
                    self._idle.set()

    def close(self) -> list[Delivery]:
        """Stop starting steps; return the buffered deliveries (parked ones are the
        waiting room's to return)."""
        self._closed = True
        self._available.release()
        self.local_buffered = 0
        return self._buffers.drain()

    async def wait_idle(self) -> None:
        await self._idle.wait()
