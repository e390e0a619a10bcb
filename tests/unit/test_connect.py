"""``legato.connect`` / ``legato.connect_sync`` on the embedded store, beside a
worker that shares only the SQLite file (as ``legato worker`` in another shell
would), and the web example built on them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from aiohttp.test_utils import TestClient, TestServer
from examples import web_checkout

import legato
from legato import RunStatus
from legato.broker.memory import MemoryBroker
from legato.store.sqlite import SqliteStore
from legato.worker.runtime import Worker, WorkerSettings


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("LEGATO_DATABASE_URL", "LEGATO_BROKER_URL", "LEGATO_APP", "LEGATO_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "legato.db"
    monkeypatch.setenv("LEGATO_EMBEDDED_PATH", str(path))
    return path


@contextlib.asynccontextmanager
async def worker(db: Path) -> AsyncIterator[Worker]:
    """A worker of its own on the SQLite file: what a client starts reaches it through the outbox."""
    store = SqliteStore(db)
    await store.open()
    await store.migrate()
    running = Worker(
        web_checkout.app,
        store,
        MemoryBroker(),
        WorkerSettings(concurrency=4, timer_poll_interval=0.05, relay_interval=0.05, relay_grace=0.2),
    )
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(running.run)
            await running.started.wait()
            yield running
            running.stop()
    finally:
        await store.close()


async def test_connect_reads_the_settings_a_worker_reads(db: Path) -> None:
    async with worker(db), legato.connect(app=web_checkout.app) as client:
        run = await client.start("checkout", {"order": "A1", "amount": 30}, key="order:A1")
        done = await client.result(run.id[:8], timeout=30)
    assert done.status is RunStatus.SUCCEEDED
    assert done.data["charged"] == 30


async def test_connect_takes_an_app_by_its_import_path_and_reads_without_one(db: Path) -> None:
    async with worker(db), legato.connect(f"sqlite:///{db}", app="examples.web_checkout:app") as client:
        run = await client.start("checkout", {"order": "A2", "amount": 5})
        await client.result(run.id, timeout=30)
    async with legato.connect() as reader:
        [found] = await reader.runs()
        assert (found.id, found.status) == (run.id, RunStatus.SUCCEEDED)
        with pytest.raises(legato.LegatoError, match=r"legato.connect\(app=...\)"):
            await reader.start("checkout", {})


async def test_the_sync_client_starts_a_run_and_waits_for_it(db: Path) -> None:
    def script() -> legato.Run:
        with legato.connect_sync(app=web_checkout.app) as client:
            run = client.start("checkout", {"order": "S1", "amount": 12})
            assert client.get(run.id).workflow == "checkout"
            assert client.call(client.client.count_runs) == 1
            return client.result(run.id, timeout=30)

    async with worker(db):
        done = await anyio.to_thread.run_sync(script)
    assert (done.status, done.data["charged"]) == (RunStatus.SUCCEEDED, 12)


async def test_the_web_example_answers_with_the_runs_result(db: Path) -> None:
    async with worker(db), TestClient(TestServer(web_checkout.web_app())) as http:
        paid = await http.post("/checkout/W1", json={"amount": 30})
        assert paid.status == 200, await paid.text()
        answer = await paid.json()
        assert answer["receipt"].startswith("R-")
        again = await http.post("/checkout/W1", json={"amount": 30})
        assert (await again.json())["run"] == answer["run"]  # the same order starts one run
        refused = await http.post("/checkout/W2", json={"amount": 0})
        assert refused.status == 402
        assert (await refused.json())["error"] == "cannot charge 0"
