"""Waiting for results: woken by Postgres NOTIFY, not by polling."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio

from legato import Client, RunStatus
from legato.app import load_app
from legato.broker.rabbitmq import RabbitMQBroker
from legato.machine.run import Run
from legato.store.postgres import PostgresStore
from tests.conftest import PG_DSN, worker_env
from tests.integration.harness import eventually, spawn_worker

APP = "tests.apps.inflight:app"
WAITERS = 500


class CountingStore(PostgresStore):
    """Counts the reads of runs: a waiter that polled would read its run again and again."""

    reads = 0

    async def load_run(self, run_id: str) -> Run | None:
        self.reads += 1
        return await super().load_run(run_id)


async def test_500_waiters_are_woken_by_notifications_without_polling(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    store = CountingStore(PG_DSN, pg_schema, min_size=1, max_size=4)
    await store.open()
    client = Client(store, None, load_app(APP), actor="test")
    runs = [await client.start("held", {"hold": 0.3}) for _ in range(WAITERS)]
    woken: dict[str, tuple[Run, float]] = {}

    async def wait_for(run_id: str) -> None:
        # fallback: the slow safety poll must not be what wakes anyone here
        done = await client.result(run_id, timeout=120)
        woken[run_id] = (done, time.time())

    log = tmp_path / "worker.log"
    worker = None
    try:
        async with anyio.create_task_group() as group:
            for run in runs:
                group.start_soon(wait_for, run.id)
            # Every waiter has read its run once and waits; no worker runs yet.
            await eventually(lambda: store.reads >= WAITERS, timeout=60)
            worker = spawn_worker(APP, worker_env(pg_schema, namespace), "--concurrency", "100", log=log)
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        await client.close()
        await store.close()
    assert len(woken) == WAITERS
    assert all(run.status is RunStatus.SUCCEEDED for run, _ in woken.values())
    # One read to start, one when the run finished: polling every 50 ms for the
    # seconds the worker took to start and run them would be tens of thousands.
    assert store.reads <= 2 * WAITERS, store.reads
    delays = sorted(at - run.finished_at for run, at in woken.values() if run.finished_at is not None)
    print(
        f"woken after the run finished: median {delays[len(delays) // 2] * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms"
    )
    assert delays[len(delays) // 2] < 1.0
