"""Real worker processes: two at once, and one killed with SIGKILL mid-step."""

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

APP = "tests.apps.shop:app"
STEPS_BY_ROUTE = {
    True: ["validate", "review", "reserve", "charge", "ship"],
    False: ["validate", "reserve", "charge", "ship"],
}


async def publish_orders(broker: RabbitMQBroker, count: int) -> None:
    for i in range(count):
        # Every third order is big enough to take the review branch of the choice.
        body = {"qty": 3 if i % 3 == 0 else 1, "price": 50}
        await broker.publish_event("order.placed", orjson.dumps(body), message_id=f"order-{i}")


async def assert_each_transition_once(store: PostgresStore, runs: list[Run]) -> None:
    for run in runs:
        assert run.status is RunStatus.SUCCEEDED, (run.id, run.status, run.error)
        history = [e for e in await store.history(run.id) if e.kind != "rejected"]
        # One history block per version, versions 1..n without gaps or repeats.
        assert sorted({e.version for e in history}) == list(range(1, run.version + 1))
        assert len({(e.version, e.idx) for e in history}) == len(history)
        succeeded = collections.Counter(e.state for e in history if e.kind == "step_succeeded")
        expected = STEPS_BY_ROUTE[run.input["qty"] * run.input["price"] > 100]
        assert succeeded == collections.Counter(expected), (run.id, succeeded)
        assert [e.kind for e in history].count(HistoryKind.JOINED) == 1
        assert [e.kind for e in history].count(HistoryKind.RUN_FINISHED) == 1


async def test_two_worker_processes_run_500_events_each_transition_exactly_once(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    env = worker_env(pg_schema, namespace)
    log = tmp_path / "workers.log"
    workers = [spawn_worker(APP, env, "--concurrency", "32", log=log) for _ in range(2)]
    try:
        await publish_orders(rabbit, 500)
        runs = await wait_finished(pg_store, 500, timeout=180)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=30) for process in workers]
    assert codes == [0, 0], log.read_text()
    assert len(runs) == 500
    assert len({r.idempotency_key for r in runs}) == 500
    await assert_each_transition_once(pg_store, runs)


async def test_sigkill_mid_step_loses_nothing_and_doubles_nothing(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    env = worker_env(
        pg_schema, namespace, SHOP_STEP_SLEEP="0.05", LEGATO_RELAY_GRACE="1", LEGATO_RELAY_INTERVAL="0.2"
    )
    log = tmp_path / "workers.log"
    victim = spawn_worker(APP, env, "--concurrency", "32", log=log)
    await publish_orders(rabbit, 200)

    async def some_done() -> bool:
        runs = await all_runs(pg_store)
        return sum(r.status is RunStatus.SUCCEEDED for r in runs) >= 20

    await eventually(some_done, timeout=60)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    assert victim.returncode == -signal.SIGKILL
    in_flight = [r for r in await all_runs(pg_store) if not r.finished]
    assert in_flight, "the kill should have caught runs in the middle"

    survivor = spawn_worker(APP, env, "--concurrency", "32", log=log)
    try:
        runs = await wait_finished(pg_store, 200, timeout=180)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=30)
    assert len(runs) == 200
    await assert_each_transition_once(pg_store, runs)


async def test_a_dying_background_task_stops_the_worker_with_the_reason(
    pg_store: PostgresStore, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    import asyncpg

    from tests.conftest import PG_DSN

    log = tmp_path / "worker.log"
    worker = spawn_worker(APP, worker_env(pg_schema, namespace, LEGATO_TIMER_POLL_INTERVAL="0.1"), log=log)
    await eventually(lambda: "worker started" in log.read_text() or worker.poll() is not None, timeout=30)
    # Break the deployment under the worker's feet: its timer poller cannot go on.
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": pg_schema})
    try:
        await conn.execute("DROP TABLE timers")
    finally:
        await conn.close()
    code = worker.wait(timeout=60)
    output = log.read_text()
    assert code == 1
    assert (
        "worker stopped: its timers task died: SchemaMissing: the database at "
        f"{PG_DSN} (schema '{pg_schema}') has no legato schema; run `legato migrate` "
        '(relation "timers" does not exist)'
    ) in output
