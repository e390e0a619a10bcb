"""Every failed attempt is a WARNING line of the worker, in text or as JSON."""

from __future__ import annotations

import signal
from datetime import datetime
from pathlib import Path

import orjson

from legato import RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.postgres import PostgresStore
from tests.conftest import worker_env
from tests.integration.harness import all_runs, eventually, spawn_worker

APP = "tests.apps.cluster:billing"


async def _failed_run(pg_store: PostgresStore, rabbit: RabbitMQBroker, log: Path) -> str:
    await eventually(lambda: "worker started" in log.read_text(), timeout=60)
    await rabbit.publish_event("card.charge", orjson.dumps({"card": 4242}), message_id="charge-1")

    async def failed() -> str | None:
        runs = await all_runs(pg_store, "charge")
        return runs[0].id if runs and runs[0].status is RunStatus.FAILED else None

    run_id: str = await eventually(failed, timeout=60)
    # The last line is written right after the transition commits: wait for it too.
    await eventually(
        lambda: "next: dead letter" in log.read_text() or '"next":"dead letter' in log.read_text()
    )
    return run_id


async def test_each_failed_attempt_is_one_json_line_with_what_happens_next(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    env = worker_env(pg_schema, namespace, LEGATO_LOG_FORMAT="json")
    worker = spawn_worker(APP, env, log=log)
    try:
        run_id = await _failed_run(pg_store, rabbit, log)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()
    lines = [orjson.loads(line) for line in log.read_text().splitlines()]  # every line is one JSON object
    failures = [line for line in lines if line["logger"] == "legato.worker.failures"]
    assert [(f["level"], f["attempt"], f["next"]) for f in failures] == [
        ("WARNING", 1, "retry"),
        ("WARNING", 2, "retry"),
        ("WARNING", 3, "dead letter, run failed"),
    ]
    for failure in failures:
        assert failure["run_id"] == run_id
        assert (failure["workflow"], failure["state"], failure["step_kind"]) == ("charge", "work", "step")
        assert failure["error_type"] == "ConnectionError"
        assert failure["error_message"] == "card processor unavailable for card 4242"
        assert failure["message"].startswith(
            f"run {run_id}: charge.work attempt {failure['attempt']} failed:"
        )
    # A retry says when: the policy's delay after the failure (0.05 s, then 0.1 s).
    retries = [datetime.fromisoformat(f["retry_at"]) for f in failures[:2]]
    assert retries[0] < retries[1]
    for failure, at in zip(failures[:2], retries, strict=True):
        assert abs((at - datetime.fromisoformat(failure["time"])).total_seconds()) < 5
        assert failure["message"].endswith(f"; retry at {failure['retry_at']}")
    assert "retry_at" not in failures[2]
    assert failures[2]["outcome"] == "retries exhausted"


async def test_failed_attempts_are_warnings_in_the_text_log(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    worker = spawn_worker(APP, worker_env(pg_schema, namespace), log=log)
    try:
        run_id = await _failed_run(pg_store, rabbit, log)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()
    warnings = [line for line in log.read_text().splitlines() if " WARNING legato.worker.failures: " in line]
    assert len(warnings) == 3, log.read_text()
    prefix = f"run {run_id}: charge.work attempt"
    assert (
        f"{prefix} 1 failed: ConnectionError: card processor unavailable for card 4242; retry at "
        in warnings[0]
    )
    assert f"{prefix} 2 failed: ConnectionError:" in warnings[1]
    assert warnings[2].endswith(
        f"{prefix} 3 failed: ConnectionError: card processor unavailable for card 4242; next: dead letter, run failed"
    )
