"""Step leases and heartbeats, with real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from legato import Client, RunStatus
from legato.app import load_app
from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.base import HistoryEntry
from legato.store.postgres import PostgresStore
from tests.conftest import worker_env
from tests.integration.harness import eventually, running, spawn_worker

APP = "tests.apps.inflight:app"


def unacked(namespace: str) -> int:
    """Deliveries the broker handed out and has not had settled, on the namespace's queues."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "messages_unacknowledged"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    total = 0
    for line in listing.splitlines():
        name, _, count = line.partition("\t")
        if name.startswith(f"{namespace}.") and count.strip().isdigit():
            total += int(count)
    return total


def starts(log: Path) -> list[tuple[int, int]]:
    """(attempt, first page) of every execution of the handler."""
    return [(int(a), int(p)) for a, p in (line.split() for line in log.read_text().splitlines())]


async def test_a_step_running_three_times_its_heartbeat_timeout_completes_once(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    client = Client(pg_store, rabbit, load_app(APP), actor="test")
    worker_log = tmp_path / "worker.log"
    worker = spawn_worker(APP, worker_env(pg_schema, namespace), log=worker_log)
    try:
        # 6 pages of 0.5 s against a 1 s heartbeat timeout: one run beats, the
        # other never calls ctx.heartbeat and is kept alive by its worker.
        beating = await client.start("leased", {"log": str(tmp_path / "a"), "pages": 6, "page_time": 0.5})
        silent = await client.start(
            "leased", {"log": str(tmp_path / "b"), "pages": 6, "page_time": 0.5, "beat": False}
        )
        done = [await client.result(run.id, timeout=60) for run in (beating, silent)]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    for run, name in zip(done, "ab", strict=True):
        assert run.status is RunStatus.SUCCEEDED, worker_log.read_text()
        history = await client.history(run.id)
        assert starts(tmp_path / name) == [(1, 1)], [(e.kind, e.detail) for e in history]
        kinds = [str(e.kind) for e in await client.history(run.id)]
        assert "step_failed" not in kinds
        assert kinds.count("step_succeeded") == 1


async def test_a_worker_killed_in_a_long_step_the_step_runs_again_once_and_resumes_from_its_heartbeat(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    client = Client(pg_store, rabbit, load_app(APP), actor="test")
    env = worker_env(pg_schema, namespace, LEGATO_TIMER_POLL_INTERVAL="0.1")
    worker_log = tmp_path / "worker.log"
    victim = spawn_worker(APP, env, log=worker_log)
    log = tmp_path / "starts"
    run = await client.start(
        "leased",
        {"log": str(log), "pages": 4, "page_time": 0.1, "hang_at": 3, "gate": str(tmp_path / "gate")},
    )
    # Pages 1 and 2 are done and reported; the handler now hangs at page 3.
    await eventually(lambda: pg_store.lease_details(run.id, 1), timeout=30)
    await eventually(lambda: _reported(pg_store, run.id, {"page": 2}), timeout=30)
    # The delivery was settled once the lease was held, while the handler still runs.
    assert unacked(namespace) == 0
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    assert starts(log) == [(1, 1)]
    # Opened only now: opened before the kill, the victim could get past page 3 in
    # the moment before the signal lands, and report it.
    (tmp_path / "gate").touch()

    survivor = spawn_worker(APP, env, log=worker_log)
    try:
        done = await client.result(run.id, timeout=60)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=30)
    assert done.status is RunStatus.SUCCEEDED, worker_log.read_text()
    # Dispatched again exactly once, and it resumed after the last reported page.
    assert starts(log) == [(1, 1), (2, 3)]
    assert done.data["crawled_from"] == 3
    history = await client.history(run.id)
    [failed] = [e for e in history if e.kind == "step_failed"]
    assert failed.detail["error"]["type"] == "HeartbeatTimeout"
    assert [e.attempt for e in history if e.kind == "step_succeeded"] == [2]


async def _reported(store: PostgresStore, run_id: str, details: dict[str, int]) -> bool:
    return await store.lease_details(run_id, 1) == details


async def test_a_worker_whose_lease_was_taken_interrupts_its_handler(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, tmp_path: Path
) -> None:
    app = load_app(APP)
    client = Client(pg_store, rabbit, app, actor="test")
    data = {
        "log": str(tmp_path / "starts"),
        "pages": 2,
        "page_time": 0.1,
        "hang_at": 2,
        "gate": str(tmp_path / "g"),
    }
    async with running(app, pg_store, rabbit):
        run = await client.start("leased", data)
        await eventually(lambda: _reported(pg_store, run.id, {"page": 1}), timeout=30)
        # As if the lease had run out and its timer fired: the worker is told at its next renewal.
        assert await pg_store.expire_lease(run.id, 1, 1, time.time() + 3600)
        failed = await eventually(lambda: _failed(client, run.id), timeout=10)
    assert failed.detail["error"]["type"] == "legato.worker.execute.HandlerInterrupted"
    assert "its lease ran out" in failed.detail["error"]["message"]


async def test_a_leased_step_stopped_by_a_shutdown_runs_again_without_waiting_for_its_timeout(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    client = Client(pg_store, rabbit, load_app(APP), actor="test")
    env = worker_env(pg_schema, namespace, LEGATO_TIMER_POLL_INTERVAL="0.1")
    worker_log = tmp_path / "worker.log"
    first = spawn_worker(APP, env, "--grace", "0.2", log=worker_log)
    log = tmp_path / "starts"
    run = await client.start(
        "patient",
        {"log": str(log), "pages": 3, "page_time": 0.1, "hang_at": 2, "gate": str(tmp_path / "gate")},
    )
    await eventually(lambda: _reported(pg_store, run.id, {"page": 1}), timeout=30)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    stopped_at = time.time()
    (tmp_path / "gate").touch()
    second = spawn_worker(APP, env, log=worker_log)
    try:
        done = await client.result(run.id, timeout=60)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert done.status is RunStatus.SUCCEEDED, worker_log.read_text()
    # Ran again once, from where it got to: as a new attempt (its lease ran out at
    # once), or as the same one if a redelivery took the lease over first.
    [(_, first_page), (_, again_from)] = starts(log)
    assert (first_page, again_from) == (1, 2)
    # Its heartbeat timeout is a minute: it ran again long before that.
    assert time.time() - stopped_at < 30


async def _failed(client: Client, run_id: str) -> HistoryEntry | None:
    found = [e for e in await client.history(run_id) if e.kind == "step_failed"]
    return found[0] if found else None
