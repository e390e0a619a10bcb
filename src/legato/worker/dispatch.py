"""From deliveries to running steps: buffering, priorities, concurrency slots.

Deliveries arrive from the broker's consumers (bounded by prefetch) into one
buffer per queue. Whenever a concurrency slot is free, the dispatcher picks
the next delivery by stride scheduling over the queues' weights: with a
backlog everywhere, high gets 8 picks for every 4 of normal and 1 of low, so
urgent work overtakes a backlog at once while low priority still moves.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Mapping

import anyio
from anyio.abc import TaskGroup

from legato.broker.base import Delivery

DEFAULT_WEIGHTS = {"high": 8, "normal": 4, "low": 1}


class Dispatcher:
    def __init__(self, concurrency: int, weights: Mapping[str, int] | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.concurrency = concurrency
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self._buffers: dict[str, deque[Delivery]] = {}
        self._pass: dict[str, float] = {}
        self._stride: dict[str, float] = {}
        self._virtual_time = 0.0
        self._ready = anyio.Event()
        self._slots = anyio.Semaphore(concurrency)
        self._closed = False
        self.in_flight = 0
        self._idle = anyio.Event()
        self._idle.set()

    def weight_of(self, queue: str) -> int:
        level = queue.rsplit(".", 1)[-1]
        return self.weights.get(level, self.weights["normal"])

    def submit(self, delivery: Delivery) -> None:
        """Called by the broker for each delivery; never blocks."""
        queue = delivery.queue
        if queue not in self._buffers:
            self._buffers[queue] = deque()
            self._stride[queue] = 1.0 / self.weight_of(queue)
            self._pass[queue] = self._virtual_time
        buffer = self._buffers[queue]
        if not buffer:
            # A queue that was idle rejoins at the current virtual time: it
            # neither hoards credit nor pays for the time it had no work.
            self._pass[queue] = max(self._pass[queue], self._virtual_time)
        buffer.append(delivery)
        self._ready.set()

    @property
    def buffered(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def _pick(self) -> Delivery | None:
        candidates = [q for q, b in self._buffers.items() if b]
        if not candidates:
            return None
        # Lowest pass first; on a tie, the heavier queue (higher priority).
        queue = min(candidates, key=lambda q: (self._pass[q], -self.weight_of(q)))
        self._virtual_time = self._pass[queue]
        self._pass[queue] += self._stride[queue]
        return self._buffers[queue].popleft()

    async def run(self, group: TaskGroup, handle: Callable[[Delivery], Awaitable[None]]) -> None:
        """Start a step for each delivery as slots free up, until :meth:`close`."""
        while True:
            await self._slots.acquire()
            delivery = await self._next()
            if delivery is None:
                self._slots.release()
                return
            self.in_flight += 1
            self._idle = anyio.Event()
            group.start_soon(self._run_one, handle, delivery, name=f"step:{delivery.queue}")

    async def _next(self) -> Delivery | None:
        """The next delivery to run; None once the dispatcher is closed."""
        while not self._closed:
            delivery = self._pick()
            if delivery is not None:
                return delivery
            self._ready = anyio.Event()
            await self._ready.wait()
        return None

    async def _run_one(self, handle: Callable[[Delivery], Awaitable[None]], delivery: Delivery) -> None:
        try:
            await handle(delivery)
        finally:
            self.in_flight -= 1
            self._slots.release()
            if self.in_flight == 0:
                self._idle.set()

    async def close(self) -> list[Delivery]:
        """Stop starting steps; return the deliveries that never started."""
        self._closed = True
        self._ready.set()
        left = [d for b in self._buffers.values() for d in b]
        for buffer in self._buffers.values():
            buffer.clear()
        return left

    async def wait_idle(self) -> None:
        await self._idle.wait()
