"""The bare loop: aio-pika + asyncpg and no framework, the baseline every legato figure is read against.

``python -m benchmarks.peers.bare_loop`` is one worker process. For each task
message: a conditional ``UPDATE`` on the run's version (one commit), publish
the next task with a publisher confirm, then ack. Nothing else: no history,
no outbox (a crash between the commit and the publish strands the run), no
loading of the run, no handler call, no retries. It is what this stack does
naively on this machine, not a ceiling.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aio_pika
import asyncpg
import orjson
from aio_pika.abc import AbstractIncomingMessage, DeliveryMode

from benchmarks.settings import BROKER_URL, DATABASE_URL

SCHEMA = "bench_bare"
QUEUE = "bench.bare"
STEPS = 3
PREFETCH = 64

CREATE = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.runs (
        id text PRIMARY KEY, step integer NOT NULL, version integer NOT NULL,
        created_at float8 NOT NULL, finished_at float8)""",
]

ADVANCE = f"""
UPDATE {SCHEMA}.runs
   SET step = step + 1, version = version + 1,
       finished_at = CASE WHEN step + 1 >= $3 THEN $4::float8 END
 WHERE id = $1 AND version = $2
RETURNING step"""


def task_body(run_id: str, version: int) -> bytes:
    return orjson.dumps({"id": run_id, "v": version})


async def serve() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    size = int(os.environ.get("BENCH_POOL", "8"))
    pool = await asyncpg.create_pool(DATABASE_URL, min_size=size, max_size=size)
    connection = await aio_pika.connect_robust(BROKER_URL)
    publisher = await connection.channel(publisher_confirms=True)
    consumer = await connection.channel()
    await consumer.set_qos(prefetch_count=PREFETCH)
    queue = await consumer.declare_queue(QUEUE, durable=True)

    async def on_message(message: AbstractIncomingMessage) -> None:
        task = orjson.loads(message.body)
        async with pool.acquire() as conn:
            step = await conn.fetchval(ADVANCE, task["id"], task["v"], STEPS, time.time())
        if step is not None and step < STEPS:
            await publisher.default_exchange.publish(
                aio_pika.Message(task_body(task["id"], task["v"] + 1), delivery_mode=DeliveryMode.PERSISTENT),
                routing_key=QUEUE,
            )
        await message.ack()

    tag = await queue.consume(on_message)
    await stop.wait()
    await queue.cancel(tag)
    await connection.close()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(serve())
