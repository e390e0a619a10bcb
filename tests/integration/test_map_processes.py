"""A map on real worker processes (Postgres, RabbitMQ): bounded concurrency measured
from the handlers' own start and end times, and a worker killed mid-map."""

from __future__ import annotations

import collections
import os
import signal
from pathlib import Path

import orjson

from legato import RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.machine.run import Run
from legato.machine.vocabulary import HistoryKind
from legato.store.postgres import PostgresStore
from tests.conftest import worker_env
from tests.integration.harness import all_runs, eventually, spawn_worker, wait_finished

APP = "tests.apps.fanout:app"


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant (an end before a start at the same time)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def handler_spans(log: Path) -> list[tuple[str, int, int, float, float]]:
    rows = []
    for line in log.read_text().splitlines():
        run_id, index, attempt, started, ended = line.split()
        rows.append((run_id, int(index), int(attempt), float(started), float(ended)))
    return rows


async def assert_each_item_once(store: PostgresStore, run: Run, items: int) -> None:
    assert run.status is RunStatus.SUCCEEDED, (run.status, run.error)
    assert run.data["results"] == [{"double": 2 * i} for i in range(items)]
    assert run.data["finished"] == items
    history = [e for e in await store.history(run.id) if e.kind != HistoryKind.REJECTED]
    assert sorted({e.version for e in history}) == list(range(1, run.version + 1))
    done = collections.Counter(e.detail["index"] for e in history if e.kind == HistoryKind.ITEM_SUCCEEDED)
    assert sorted(done) == list(range(items))
    assert set(done.values()) == {1}
    assert [e.kind for e in history].count(HistoryKind.JOINED) == 1
    holder_seq = next(e.detail["seq"] for e in history if e.kind == HistoryKind.MAP_STARTED)
    rows = []
    after = -1
    while page := await store.map_items(run.id, holder_seq, after=after, limit=500):
        rows.extend(page)
        after = page[-1].index
    assert [r.index for r in rows] == list(range(items))
    assert all(r.ok for r in rows)


async def test_a_map_of_1000_items_never_runs_more_than_10_and_keeps_item_order(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    spans_log = tmp_path / "spans.log"
    env = worker_env(pg_schema, namespace, FANOUT_LOG=str(spans_log), FANOUT_STEP_SLEEP="0.002")
    log = tmp_path / "workers.log"
    workers = [spawn_worker(APP, env, "--concurrency", "32", log=log) for _ in range(2)]
    try:
        body = orjson.dumps({"items": list(range(1000))})
        await rabbit.publish_event("fanout.start", body, message_id="fanout-1")
        [run] = await wait_finished(pg_store, 1, timeout=240)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=30) for process in workers]
    assert codes == [0, 0], log.read_text()
    await assert_each_item_once(pg_store, run, 1000)
    spans = handler_spans(spans_log)
    assert sorted(index for _, index, _, _, _ in spans) == list(range(1000))
    peak = most_at_once([(started, ended) for _, _, _, started, ended in spans])
    assert 1 < peak <= 10, peak


async def test_sigkill_mid_map_records_every_item_once(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    spans_log = tmp_path / "spans.log"
    env = worker_env(
        pg_schema,
        namespace,
        FANOUT_LOG=str(spans_log),
        FANOUT_STEP_SLEEP="0.02",
        LEGATO_RELAY_GRACE="1",
        LEGATO_RELAY_INTERVAL="0.2",
    )
    log = tmp_path / "workers.log"
    victim = spawn_worker(APP, env, "--concurrency", "32", log=log)
    await rabbit.publish_event("fanout.start", orjson.dumps({"items": list(range(300))}), message_id="f-2")

    async def some_done() -> bool:
        return spans_log.exists() and len(spans_log.read_text().splitlines()) >= 50

    await eventually(some_done, timeout=60)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    assert victim.returncode == -signal.SIGKILL
    [run] = await all_runs(pg_store)
    assert not run.finished, "the kill should have caught the map in the middle"

    survivor = spawn_worker(APP, env, "--concurrency", "32", log=log)
    try:
        [run] = await wait_finished(pg_store, 1, timeout=180)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=30)
    await assert_each_item_once(pg_store, run, 300)
