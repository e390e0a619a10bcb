"""Events through the HTTP ingress beside the same events published to RabbitMQ, in one run.

One real ``legato worker --http-port`` on the local Postgres and RabbitMQ
takes N events twice, one source after the other (the first source's runs
all finish before the second starts):

- **HTTP**: ``POST /events/bench.ingress`` with an ``Idempotency-Key``; the
  time to durable acceptance is until the 202, which comes once the run is
  committed.
- **AMQP**: the same bodies published to ``legato_bench_ingress.events`` with
  ``message_id`` and publisher confirms; the time to durable acceptance is
  until the broker's confirm (the message is persisted; the run does not exist
  yet). The table also shows how long until every run was committed.

Both keep C requests or publishes in flight. Events per second = N / the span
from the first send to the last acceptance::

    .venv/bin/python -m benchmarks.ingress --events 2000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import anyio
import asyncpg
import orjson

from benchmarks.metrics import percentile
from benchmarks.settings import BROKER_URL, DATABASE_URL, worker_env
from legato import App, StepContext, Task, Workflow

SCHEMA = "legato_bench_ingress"
NAMESPACE = "legato_bench_ingress"
EVENT = "bench.ingress"
TOKEN = "bench-ingress-token"


async def noop(ctx: StepContext) -> dict[str, Any]:
    return {}


APP = App([Workflow("ingress", triggers=(EVENT,), start="noop", states={"noop": Task(noop)})])


@dataclass(frozen=True)
class SourceResult:
    source: str
    events: int
    seconds: float
    latencies: list[float]
    runs_committed_after: float
    """From the first send until the last of the N runs was committed."""

    @property
    def per_second(self) -> float:
        return self.events / self.seconds

    def row(self) -> str:
        p50, p99 = percentile(self.latencies, 50) * 1000, percentile(self.latencies, 99) * 1000
        return (
            f"| {self.source} | {self.events} | {self.per_second:,.0f} | {p50:.1f} | {p99:.1f} "
            f"| {self.runs_committed_after:.2f} |"
        )


async def paced(
    count: int, concurrency: int, send: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Send ``count`` events with ``concurrency`` in flight; the span and each event's latency."""
    latencies: list[float] = []
    next_index = iter(range(count))

    async def sender() -> None:
        for index in next_index:
            began = time.perf_counter()
            await send(index)
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(sender)
    return time.perf_counter() - began, latencies


async def over_http(url: str, count: int, concurrency: int, prefix: str) -> tuple[float, list[float]]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(index: int) -> None:
            body = orjson.dumps({"n": index, "source": prefix})
            key = {"Idempotency-Key": f'"{prefix}-{index}"'}
            async with session.post(f"{url}/events/{EVENT}", data=body, headers=headers | key) as answer:
                if answer.status != 202:
                    raise RuntimeError(f"event {index}: {answer.status} {await answer.text()}")

        return await paced(count, concurrency, send)


async def over_amqp(count: int, concurrency: int, prefix: str) -> tuple[float, list[float]]:
    connection = await aio_pika.connect(BROKER_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{NAMESPACE}.events")

        async def send(index: int) -> None:
            message = aio_pika.Message(
                orjson.dumps({"n": index, "source": prefix}),
                message_id=f"{prefix}-{index}",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(message, routing_key=EVENT)  # returns on the confirm

        return await paced(count, concurrency, send)
    finally:
        await connection.close()


async def runs_committed(conn: asyncpg.Connection, prefix: str, count: int, since: float) -> float:
    """Wait until the ``count`` runs of this source are committed; seconds from ``since`` to the last."""
    query = (
        f"SELECT count(*), extract(epoch FROM max(created_at))::float8 FROM {SCHEMA}.runs"
        " WHERE idempotency_key LIKE $1"
    )
    deadline = time.monotonic() + 300
    while True:
        row = await conn.fetchrow(query, f"ingress:{prefix}-%")
        assert row is not None
        done, last = row
        if done >= count:
            return float(last) - since
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {count} {prefix} runs were committed")
        await asyncio.sleep(0.05)


async def measure(url: str, events: int, concurrency: int) -> list[SourceResult]:
    senders: dict[str, Callable[[int, int, str], Awaitable[tuple[float, list[float]]]]] = {
        "http": lambda count, inflight, prefix: over_http(url, count, inflight, prefix),
        "amqp": over_amqp,
    }
    names = {"http": "HTTP ingress (202 = run committed)", "amqp": "RabbitMQ publish (confirm)"}
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        results = []
        for prefix, send in senders.items():
            # Warm up the path (connections, prepared statements) outside the figures.
            await send(20, 4, f"warm-{prefix}")
            await runs_committed(conn, f"warm-{prefix}", 20, 0.0)
            began = time.time()
            seconds, latencies = await send(events, concurrency, prefix)
            committed = await runs_committed(conn, prefix, events, began)
            results.append(SourceResult(names[prefix], events, seconds, latencies, committed))
        return results
    finally:
        await conn.close()


async def reset() -> None:
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    finally:
        await conn.close()
    connection = await aio_pika.connect(BROKER_URL)
    try:
        channel = await connection.channel()
        for queue in (
            "triggers",
            "app.default",
            "signals",
            "unrouted",
            "tasks.high",
            "tasks.normal",
            "tasks.low",
            "dead",
        ):
            await channel.queue_delete(f"{NAMESPACE}.{queue}")
    finally:
        await connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_worker(port: int, log: Path) -> subprocess.Popen[bytes]:
    env = worker_env(
        LEGATO_DATABASE_URL=DATABASE_URL,
        LEGATO_DATABASE_SCHEMA=SCHEMA,
        LEGATO_BROKER_URL=BROKER_URL,
        LEGATO_NAMESPACE=NAMESPACE,
        LEGATO_HTTP_TOKEN=TOKEN,
        LEGATO_POOL_SIZE="10",
        LEGATO_LOG_LEVEL="warning",
    )
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "legato", "worker", "benchmarks.ingress:APP", "--http-port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited: see {log}")
            try:
                async with session.get(f"{url}/readyz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the worker was not ready within 60 s: see {log}")


async def main(events: int, concurrency: int) -> None:
    await reset()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="bench-ingress-")) / "worker.log"
    process = start_worker(port, log)
    try:
        await wait_ready(url, process, log)
        results = await measure(url, events, concurrency)
    finally:
        process.terminate()
        process.wait(60)
    print(f"{events} events, {concurrency} in flight, one worker (concurrency 64) on Postgres + RabbitMQ\n")
    print(
        "| source | events | events/s | acceptance p50 (ms) | acceptance p99 (ms) | all runs committed after (s) |"
    )
    print("|---|---|---|---|---|---|")
    for result in results:
        print(result.row())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args()
    asyncio.run(main(options.events, options.concurrency))
