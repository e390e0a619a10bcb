"""DBOS: Postgres workflows and queues, in a database of its own (see benchmarks/peers/dbos_app.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
from dbos import DBOSClient

from benchmarks import db
from benchmarks.metrics import Timing
from benchmarks.peers import dbos_app
from benchmarks.settings import db_pool, worker_env
from benchmarks.systems.base import PYTHON, Guarantees
from benchmarks.workloads import Mode, Shape

ENQUEUE_THREADS = 8
URL = dbos_app.SYSTEM_DATABASE_URL
# Everything a run leaves behind; the queue and migration tables stay.
RUN_TABLES = (
    "workflow_status",
    "operation_outputs",
    "workflow_input",
    "workflow_output",
    "notifications",
    "workflow_events",
    "workflow_events_history",
    "streams",
)


class DBOSSystem:
    name = "dbos"
    guarantees = Guarantees(
        durable_state="yes: workflow status and every step's output checkpointed in Postgres",
        acked_after="no broker: a workflow is dequeued from a Postgres table and recovered if its process dies",
        how="async @DBOS.workflow of @DBOS.step no-ops; fan-out gathers 4 step tasks; queue polled every 10 ms",
    )

    def __init__(self) -> None:
        self._client: DBOSClient | None = None

    def supports(self, shape: Shape, mode: Mode) -> bool:
        return shape is not Shape.DATA  # no run data to grow

    def client(self) -> DBOSClient:
        if self._client is None:
            self._client = DBOSClient(system_database_url=URL, system_database_pool_size=ENQUEUE_THREADS)
        return self._client

    async def prepare(self) -> None:
        exists = await db.fetch("SELECT 1 FROM pg_database WHERE datname = $1", dbos_app.DATABASE)
        if not exists:
            await db.execute(f"CREATE DATABASE {dbos_app.DATABASE}")
        # DBOS creates its schema and records the queue when it launches.
        await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                [PYTHON, "-m", "benchmarks.peers.dbos_app", "--migrate"],
                env=worker_env(BENCH_POOL="2"),
                check=True,
                capture_output=True,
            )
        )

    async def reset(self) -> None:
        tables = ", ".join(f"dbos.{t}" for t in RUN_TABLES)
        await db.execute(f"TRUNCATE {tables} CASCADE", url=URL)

    def _enqueue(self, shape: Shape) -> Any:
        return self.client().enqueue({"workflow_name": shape.value, "queue_name": dbos_app.QUEUE})

    async def enqueue(self, shape: Shape, runs: int) -> None:
        def send_all() -> None:
            with ThreadPoolExecutor(ENQUEUE_THREADS) as pool:
                for future in [pool.submit(self._enqueue, shape) for _ in range(runs)]:
                    future.result()

        await anyio.to_thread.run_sync(send_all)

    async def publish(self, shape: Shape) -> None:
        await anyio.to_thread.run_sync(self._enqueue, shape)

    def worker_commands(self, processes: int) -> list[list[str]]:
        return [[PYTHON, "-m", "benchmarks.peers.dbos_app"] for _ in range(processes)]

    def worker_env(self, processes: int) -> dict[str, str]:
        return worker_env(BENCH_POOL=str(db_pool(processes)))

    async def consuming(self) -> bool:
        rows = await db.fetch(
            "SELECT 1 FROM dbos.workflow_status WHERE status <> 'ENQUEUED' LIMIT 1", url=URL
        )
        return bool(rows)

    async def first_taken(self) -> float | None:
        rows = await db.fetch("SELECT min(started_at_epoch_ms) / 1000.0 FROM dbos.workflow_status", url=URL)
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def progress(self) -> tuple[int, int]:
        return await db.fetch_counts(
            "SELECT count(*) FILTER (WHERE status = 'SUCCESS'),"
            " count(*) FILTER (WHERE status IN ('ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED'))"
            " FROM dbos.workflow_status",
            url=URL,
        )

    async def timings(self) -> Sequence[Timing]:
        return await db.fetch_timings(
            "SELECT created_at / 1000.0, completed_at / 1000.0 FROM dbos.workflow_status WHERE status = 'SUCCESS'",
            url=URL,
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await anyio.to_thread.run_sync(client.destroy)
