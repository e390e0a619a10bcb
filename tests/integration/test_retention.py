"""Retention end to end on real Postgres and RabbitMQ: runs removed by a pass,
their events redelivered to a real worker, passes in the worker itself."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio
import orjson
import pytest

from legato import App, Task, Workflow
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.clock import ManualClock
from legato.errors import KeyRetired
from legato.lifecycle.archive import Archive
from legato.lifecycle.retention import DAY, LEASE, Retention, RetentionPolicy
from legato.machine.commands import Decision
from legato.machine.decide import decide, start_run
from legato.machine.events import CancelRequested
from legato.machine.run import Run, RunStatus
from legato.store.postgres import PostgresStore
from legato.store.rows import new_run_id
from legato.telemetry.metrics import Metrics
from legato.worker.runtime import WorkerSettings
from tests.apps.shop import app as shop
from tests.conftest import worker_env
from tests.contract.workflow import WF
from tests.integration.harness import all_runs, eventually, running, wait_finished


def _days_later(days: float) -> ManualClock:
    return ManualClock(time.time() + days * DAY)


async def test_a_redelivered_event_of_a_removed_run_starts_no_run_inside_the_window(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, tmp_path: Path
) -> None:
    body = orjson.dumps({"qty": 2, "price": 5})
    async with running(shop, pg_store, rabbit):
        await rabbit.publish_event("order.placed", body, message_id="evt-old")
        [old] = await wait_finished(pg_store, 1)
        # Three days on, with a one-day retention: the run goes, archived first.
        retention = Retention(
            pg_store,
            RetentionPolicy(default=DAY),
            _days_later(3),
            holder="test",
            archive=Archive(tmp_path),
        )
        report = await retention.run()
        assert report is not None
        assert report.removed.runs == 1
        [archived] = _lines(report.archived[0])
        assert len(archived["history"]) > 0
        # Its day had no other run: its history went with the day's partition, whole.
        assert report.removed.history == 0
        assert report.removed.history_partitions >= 1
        assert await pg_store.history(old.id) == []
        assert await pg_store.load_run(old.id) is None

        # The broker redelivers the old event; a new one follows it on the same queue.
        await rabbit.publish_event("order.placed", body, message_id="evt-old")
        await rabbit.publish_event("order.placed", body, message_id="evt-new")
        [new] = await wait_finished(pg_store, 1)
        assert new.idempotency_key == "order:evt-new"
        assert len(await all_runs(pg_store)) == 1

        # Starting with the old key from the client is refused the same way.
        client = Client(pg_store, app=shop, broker=rabbit)
        with pytest.raises(KeyRetired) as refused:
            await client.start("order", {"qty": 1, "price": 1}, key="evt-old")
        assert refused.value.run_id == old.id
    assert archived["run"]["id"] == old.id
    assert old.finished_at is not None
    day = time.strftime("%Y-%m-%d", time.gmtime(old.finished_at))
    assert report.archived == (tmp_path / "order" / f"{day}.jsonl",)


def _lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_only_one_process_runs_a_pass_at_a_time(pg_store: PostgresStore) -> None:
    clock = _days_later(0)
    mine = Retention(pg_store, RetentionPolicy(default=DAY), clock, holder="mine")
    assert await pg_store.take_maintenance_lease(LEASE, "theirs", clock.now(), 60)
    assert await mine.run() is None
    await pg_store.release_maintenance_lease(LEASE, "theirs")
    assert await mine.run() is not None
    # A pass gives the lease back when it is done.
    assert await pg_store.take_maintenance_lease(LEASE, "theirs", clock.now(), 60)


async def quick(ctx: object) -> dict[str, bool]:
    return {"done": True}


SHORT = Workflow("short", start="a", states={"a": Task(quick)}, retention=0.2)
KEPT = Workflow("kept", start="a", states={"a": Task(quick)})


async def test_the_worker_removes_runs_past_their_workflows_retention_and_counts_them(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    app = App([SHORT, KEPT])
    metrics = Metrics()
    settings = WorkerSettings(concurrency=4, timer_poll_interval=0.05, retention_interval=0.05)
    async with running(app, pg_store, rabbit, settings, observer=metrics.observer()) as worker:
        short = await worker.engine.start("short", {})
        kept = await worker.engine.start("kept", {})

        async def removed() -> bool:
            return await pg_store.load_run(short.run.id) is None

        async def kept_finished() -> bool:
            run = await pg_store.load_run(kept.run.id)
            return run is not None and run.status is RunStatus.SUCCEEDED

        await eventually(removed, timeout=30)
        await eventually(kept_finished, timeout=30)
        # Several passes later: no default retention, so "kept" is kept forever.
        seen = await eventually(lambda: worker_passes(metrics) >= 3 and worker_passes(metrics))
        assert seen >= 3
        assert await pg_store.load_run(kept.run.id) is not None
    assert metrics.retention_removed.labels("runs")._value.get() == 1
    assert metrics.retention_removed.labels("history")._value.get() >= 3
    assert metrics.retention_duration._sum.get() > 0


def worker_passes(metrics: Metrics) -> float:
    """Retention passes the worker has run, from its histogram's count."""
    for family in metrics.retention_duration.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    return 0.0


async def test_the_cli_shows_what_would_go_then_removes_it(
    pg_store: PostgresStore, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    now = time.time()
    old = await _cancelled_at(pg_store, now - 10 * DAY, key="contract:k-old")
    recent = await _cancelled_at(pg_store, now - DAY)
    env = worker_env(
        pg_schema,
        namespace,
        LEGATO_APP="tests.apps.shop:app",
        LEGATO_RETENTION_DAYS="7",
        LEGATO_ARCHIVE_DIR=str(tmp_path),
    )

    async def text(*args: str, code: int = 0) -> tuple[str, str]:
        done = await anyio.run_process([sys.executable, "-m", "legato", *args], env=env, check=False)
        assert done.returncode == code, done.stderr.decode()
        return done.stdout.decode(), done.stderr.decode()

    async def legato(*args: str) -> dict:  # type: ignore[type-arg]
        found: dict = orjson.loads((await text(*args))[0])  # type: ignore[type-arg]
        return found

    before = await legato("retention", "status", "--json")
    assert (before["expired"], before["retired_keys"]) == ({"contract": 1}, 0)
    assert before["oldest_finished"] == pytest.approx(now - 10 * DAY)
    ran = await legato("retention", "run", "--json")
    assert (ran["runs"], ran["outbox"]) == (1, 1)
    assert len(ran["archived"]) == 1
    after = await legato("retention", "status", "--json")
    assert (after["expired"], after["retired_keys"]) == ({}, 1)
    assert await pg_store.load_run(old.id) is None
    assert await pg_store.load_run(recent.id) is not None
    shown, _ = await text("retention", "status")
    assert "retired idempotency keys: 1 (0 past their window)" in shown
    assert "expired runs kept for an open dead letter: 0" in shown
    # A worker's pass holds the lease: the command says so and fails.
    assert await pg_store.take_maintenance_lease(LEASE, "a worker", time.time(), 60)
    _, refused = await text("retention", "run", code=1)
    assert "another process is running a retention pass" in refused


async def _cancelled_at(store: PostgresStore, at: float, key: str | None = None) -> Run:
    run = (await store.create_run(start_run(WF, new_run_id(), {}, at, idempotency_key=key))).run
    done = decide(WF, run, CancelRequested("ops", compensate=False), at)
    assert isinstance(done, Decision)
    await store.apply(done)
    return done.run
