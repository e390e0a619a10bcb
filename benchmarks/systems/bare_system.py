"""The bare aio-pika + asyncpg loop (see benchmarks/peers/bare_loop.py); chains only."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import aio_pika
import asyncpg
from aio_pika.abc import DeliveryMode

from benchmarks import db
from benchmarks.metrics import Timing
from benchmarks.peers import bare_loop
from benchmarks.settings import BROKER_URL, DATABASE_URL, db_pool, worker_env
from benchmarks.systems.base import PYTHON, Guarantees, QueueProbe, delete_queues
from benchmarks.workloads import Mode, Shape

PUBLISH_BATCH = 500


class BareSystem:
    name = "bare loop"
    guarantees = Guarantees(
        durable_state="partly: a version counter per run; no history, no outbox",
        acked_after="the UPDATE commits and the next task is confirmed (a crash in between strands the run)",
        how="aio-pika consume -> UPDATE ... WHERE version = $n -> publish with confirm -> ack",
    )

    def __init__(self) -> None:
        self.probe = QueueProbe(bare_loop.QUEUE)

    def supports(self, shape: Shape, mode: Mode) -> bool:
        return shape is Shape.CHAIN and mode is Mode.DRAIN

    async def prepare(self) -> None:
        await db.execute(*bare_loop.CREATE)

    async def reset(self) -> None:
        await db.execute(f"TRUNCATE {bare_loop.SCHEMA}.runs")
        await delete_queues(bare_loop.QUEUE)

    async def enqueue(self, shape: Shape, runs: int) -> None:
        ids = [uuid.uuid4().hex for _ in range(runs)]
        now = time.time()
        conn = await asyncpg.connect(DATABASE_URL)
        try:
            await conn.copy_records_to_table(
                "runs",
                schema_name=bare_loop.SCHEMA,
                records=[(run_id, 0, 0, now) for run_id in ids],
                columns=["id", "step", "version", "created_at"],
            )
        finally:
            await conn.close()
        connection = await aio_pika.connect(BROKER_URL)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.declare_queue(bare_loop.QUEUE, durable=True)
            for start in range(0, runs, PUBLISH_BATCH):
                await asyncio.gather(
                    *(
                        channel.default_exchange.publish(
                            aio_pika.Message(
                                bare_loop.task_body(run_id, 0), delivery_mode=DeliveryMode.PERSISTENT
                            ),
                            routing_key=bare_loop.QUEUE,
                        )
                        for run_id in ids[start : start + PUBLISH_BATCH]
                    )
                )
        finally:
            await connection.close()

    async def publish(self, shape: Shape) -> None:
        raise NotImplementedError("the bare loop runs the drain workloads of 3-step chains only")

    def worker_commands(self, processes: int) -> list[list[str]]:
        return [[PYTHON, "-m", "benchmarks.peers.bare_loop"] for _ in range(processes)]

    def worker_env(self, processes: int) -> dict[str, str]:
        return worker_env(BENCH_POOL=str(db_pool(processes)))

    async def consuming(self) -> bool:
        return await self.probe.consuming()

    async def first_taken(self) -> float | None:
        return None

    async def progress(self) -> tuple[int, int]:
        return await db.fetch_counts(
            f"SELECT count(*) FILTER (WHERE finished_at IS NOT NULL), 0 FROM {bare_loop.SCHEMA}.runs"
        )

    async def timings(self) -> Sequence[Timing]:
        return await db.fetch_timings(
            f"SELECT created_at, finished_at FROM {bare_loop.SCHEMA}.runs WHERE finished_at IS NOT NULL"
        )

    async def close(self) -> None:
        await self.probe.close()
