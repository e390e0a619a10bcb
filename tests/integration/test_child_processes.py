"""Parents and child runs on real worker processes (Postgres, RabbitMQ), with a
worker killed in the middle: every child runs to one recorded completion, and
each child's end is applied to its parent once."""

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

APP = "tests.apps.family:app"
PARENTS = 4
ITEMS = 25


async def assert_one_completion_per_child(store: PostgresStore, parent: Run) -> None:
    assert parent.status is RunStatus.SUCCEEDED, (parent.status, parent.error)
    items = parent.input["items"]
    assert [r["double"] for r in parent.data["results"]] == [2 * n for n in items]
    assert parent.data["last"]["double"] == 2 * parent.data["total"]
    children = await store.children(parent.id)
    # One child per item plus the last one: a redelivered or re-run step made no second child.
    assert len(children) == len(items) + 1
    assert all(c.status is RunStatus.SUCCEEDED for c in children)
    assert all(c.parent is not None and c.parent.run_id == parent.id for c in children)
    history = [e for e in await store.history(parent.id) if e.kind != HistoryKind.REJECTED]
    assert sorted({e.version for e in history}) == list(range(1, parent.version + 1))
    applied = collections.Counter(e.detail["child"] for e in history if e.kind == HistoryKind.CHILD_SUCCEEDED)
    assert set(applied) == {c.id for c in children}
    assert set(applied.values()) == {1}
    for child in children:
        ends = [e for e in await store.history(child.id) if e.kind == HistoryKind.RUN_FINISHED]
        assert len(ends) == 1


async def test_sigkill_mid_parent_child_pairs_records_every_child_once(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    family_log = tmp_path / "family.log"
    env = worker_env(
        pg_schema,
        namespace,
        FAMILY_LOG=str(family_log),
        FAMILY_STEP_SLEEP="0.05",
        LEGATO_RELAY_GRACE="1",
        LEGATO_RELAY_INTERVAL="0.2",
    )
    log = tmp_path / "workers.log"
    victim = spawn_worker(APP, env, "--concurrency", "16", log=log)
    for number in range(PARENTS):
        items = list(range(number * 100, number * 100 + ITEMS))
        await rabbit.publish_event(
            "family.start", orjson.dumps({"items": items}), message_id=f"family-{number}"
        )

    async def some_done() -> bool:
        return family_log.exists() and len(family_log.read_text().splitlines()) >= 20

    await eventually(some_done, timeout=60)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    assert victim.returncode == -signal.SIGKILL
    parents = await all_runs(pg_store, "family")
    assert len(parents) == PARENTS
    assert not all(p.finished for p in parents), "the kill should have caught the parents in the middle"

    survivor = spawn_worker(APP, env, "--concurrency", "16", log=log)
    try:
        runs = await wait_finished(pg_store, PARENTS * (ITEMS + 2), timeout=240)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=30)
    parents = [r for r in runs if r.workflow == "family"]
    assert len(parents) == PARENTS
    for parent in parents:
        await assert_one_completion_per_child(pg_store, parent)
    # Every child's handler ran (at least once: the kill may have cut one short).
    ran = {line.split()[0] for line in family_log.read_text().splitlines()}
    children = {r.id for r in runs if r.workflow == "member"}
    assert ran == children
