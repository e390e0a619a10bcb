"""What Celery and Dramatiq share here: a RabbitMQ queue, and completions recorded in Postgres."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import aio_pika
import anyio

from benchmarks import db
from benchmarks.metrics import Timing
from benchmarks.peers.record import SCHEMA_SQL
from benchmarks.settings import BROKER_URL, PEERS_SCHEMA
from benchmarks.systems.base import QueueProbe
from benchmarks.workloads import Mode, Shape

Sender = Callable[[Shape, str, float], None]
ENQUEUE_THREADS = 4


async def purge_queues(*names: str) -> None:
    """Empty the queues, keeping them declared (a client may have cached the declaration)."""
    connection = await aio_pika.connect(BROKER_URL)
    try:
        for name in names:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
                await queue.purge()
            except aio_pika.exceptions.ChannelClosed:
                continue  # not declared yet: nothing to purge
            with contextlib.suppress(aio_pika.exceptions.ChannelInvalidStateError):
                await channel.close()
    finally:
        await connection.close()


class RabbitPeer:
    """A task queue on RabbitMQ; the last step of a run records its completion in Postgres."""

    name: str
    queues: tuple[str, ...]

    def __init__(self, send: Sender) -> None:
        self._send = send
        self.probe = QueueProbe(self.queues[0])

    def supports(self, shape: Shape, mode: Mode) -> bool:
        return shape is not Shape.DATA  # no run data to grow

    async def prepare(self) -> None:
        await db.execute(*SCHEMA_SQL)

    async def reset(self) -> None:
        await purge_queues(*self.queues)
        await db.execute(
            f"DELETE FROM {PEERS_SCHEMA}.completions WHERE system = '{self.name}'",
            f"TRUNCATE {PEERS_SCHEMA}.join_parts",
        )

    def _send_one(self, shape: Shape) -> None:
        self._send(shape, uuid.uuid4().hex, time.time())

    async def enqueue(self, shape: Shape, runs: int) -> None:
        def send_all() -> None:
            with ThreadPoolExecutor(ENQUEUE_THREADS) as pool:
                for future in [pool.submit(self._send_one, shape) for _ in range(runs)]:
                    future.result()

        await anyio.to_thread.run_sync(send_all)

    async def publish(self, shape: Shape) -> None:
        await anyio.to_thread.run_sync(self._send_one, shape)

    async def consuming(self) -> bool:
        return await self.probe.consuming()

    async def first_taken(self) -> float | None:
        return None

    async def progress(self) -> tuple[int, int]:
        return await db.fetch_counts(
            f"SELECT count(*), 0 FROM {PEERS_SCHEMA}.completions WHERE system = $1", self.name
        )

    async def timings(self) -> Sequence[Timing]:
        return await db.fetch_timings(
            f"SELECT created_at, finished_at FROM {PEERS_SCHEMA}.completions WHERE system = $1", self.name
        )

    async def close(self) -> None:
        await self.probe.close()
