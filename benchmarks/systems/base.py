"""What the harness needs from a system under test."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from benchmarks.metrics import Timing
from benchmarks.settings import BROKER_URL
from benchmarks.workloads import Mode, Shape

PYTHON = sys.executable


@dataclass(frozen=True)
class Guarantees:
    """What a system promises in the configuration benchmarked, for the table."""

    durable_state: str
    """Is the state of a run (which steps are done) committed somewhere durable, and where?"""
    acked_after: str
    """When is a task message acknowledged?"""
    how: str
    """How the workloads are written for this system, in a few words."""


class System(Protocol):
    name: str
    guarantees: Guarantees

    def supports(self, shape: Shape, mode: Mode) -> bool: ...

    async def prepare(self) -> None:
        """Once per harness run: create databases, schemas, queues."""

    async def reset(self) -> None:
        """Before each cell: no runs, no messages."""

    async def enqueue(self, shape: Shape, runs: int) -> None:
        """Create ``runs`` runs with no worker running (drain mode)."""

    async def publish(self, shape: Shape) -> None:
        """Start one run now, the way an event source would; its clock starts here."""

    def worker_commands(self, processes: int) -> list[list[str]]:
        """One command per OS process to start (or one that forks ``processes`` itself)."""

    def worker_env(self, processes: int) -> dict[str, str]: ...

    async def consuming(self) -> bool:
        """Have the workers begun taking work?"""

    async def first_taken(self) -> float | None:
        """When the first run was taken, if the system records it (else the harness's probe stands)."""

    async def progress(self) -> tuple[int, int]:
        """(finished, failed) runs so far."""

    async def timings(self) -> Sequence[Timing]:
        """Every finished run's (created, finished)."""

    async def close(self) -> None: ...


class QueueProbe:
    """Watches a RabbitMQ queue's consumer count, for :meth:`System.consuming`."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._connection: AbstractRobustConnection | None = None

    async def consuming(self) -> bool:
        if self._connection is None:
            self._connection = await aio_pika.connect_robust(BROKER_URL)
        channel = await self._connection.channel()
        try:
            declared = await channel.declare_queue(self.queue, passive=True)
            return bool(declared.declaration_result.consumer_count)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False  # the worker has not declared it yet (the broker closed the channel)
        finally:
            if not channel.is_closed:
                await channel.close()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


async def delete_queues(*names: str, exchanges: Sequence[str] = ()) -> None:
    connection = await aio_pika.connect(BROKER_URL)
    try:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()
