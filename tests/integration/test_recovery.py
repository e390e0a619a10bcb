"""Error recovery on real Postgres and RabbitMQ: retries, dead letters, replay, sagas, approvals."""

from __future__ import annotations

import collections
import itertools
import os
import signal
from dataclasses import replace
from pathlib import Path

import anyio
import asyncpg
import pytest

from legato import BrokerError, OperationRefused, RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.machine.run import Phase
from legato.machine.vocabulary import HistoryKind
from legato.store.postgres import PostgresStore
from legato.worker.runtime import WorkerSettings
from tests.apps import recovery
from tests.conftest import PG_DSN, worker_env
from tests.integration.harness import all_runs, eventually, running, spawn_worker, wait_finished

SETTINGS = WorkerSettings(concurrency=16, timer_poll_interval=0.05)


@pytest.fixture(autouse=True)
def _executions_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVERY_DSN", PG_DSN)
    recovery.FIXED["handler"] = False


@pytest.fixture
async def client(pg_store: PostgresStore, rabbit: RabbitMQBroker) -> Client:
    return Client(pg_store, rabbit, recovery.app, actor="test:ops")


async def executions(schema: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
    try:
        return list(await conn.fetch("SELECT run_id, state, kind, attempt, at FROM executions ORDER BY at"))
    finally:
        await conn.close()


async def test_a_step_failing_three_times_completes_on_attempt_four_with_policy_delays(
    client: Client, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        run = await client.start("retrying", {"fail_times": 3, "_schema": pg_schema})
        done = await client.wait(run.id, timeout=30)
    assert done.status is RunStatus.SUCCEEDED
    assert done.data["succeeded_on"] == 4
    history = await pg_store.history(run.id)
    failed = [e for e in history if e.kind == "step_failed"]
    assert [e.attempt for e in failed] == [1, 2, 3]
    assert all(e.detail["error"]["type"] == "ConnectionError" for e in failed)
    assert all("Traceback" in e.detail["error"]["traceback"] for e in failed)
    # The delays follow the policy (0.05 s doubling, ±10 % jitter)...
    delays = [e.detail["delay"] for e in history if e.kind == "retry_scheduled"]
    for delay, base in zip(delays, [0.05, 0.1, 0.2], strict=True):
        assert base * 0.9 <= delay <= base * 1.1
    # ...and the attempts really were that far apart (recorded start times).
    starts = [row["at"].timestamp() for row in await executions(pg_schema)]
    for gap, delay in zip([b - a for a, b in itertools.pairwise(starts)], delays, strict=True):
        assert gap >= delay * 0.99


async def test_always_failing_ends_in_the_dead_letter_queue_and_replay_resumes_it_once(
    client: Client, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        run = await client.start("fragile", {"_schema": pg_schema})
        failed = await client.wait(run.id, timeout=30)
        assert failed.status is RunStatus.FAILED
        assert len(await executions(pg_schema)) == 5  # exactly max_attempts
        [letter] = await client.dead_letters()
        assert (letter.run_id, letter.state, letter.attempts, letter.reason) == (
            run.id,
            "call",
            5,
            "retries exhausted",
        )
        assert letter.error is not None
        assert letter.error.type == "ValueError"
        queued = await eventually(rabbit.dead_lettered)
        assert queued[0][1]["x-legato-reason"] == "retries exhausted"

        recovery.FIXED["handler"] = True  # the fix is deployed
        outcomes = await _replay_concurrently(client, letter.id, copies=2)
        assert sorted(type(o).__name__ for o in outcomes) == ["OperationRefused", "Run"]
        done = await client.wait(run.id, timeout=30)
    assert done.status is RunStatus.SUCCEEDED
    assert done.data["fixed"] is True
    attempts = [row["attempt"] for row in await executions(pg_schema)]
    assert attempts == [1, 2, 3, 4, 5, 6]  # one more attempt, not two
    replayed = await client.dead_letter(letter.id)
    assert (replayed.status, replayed.resolved_by) == ("replayed", "test:ops")
    resumes = [e for e in await pg_store.history(run.id) if e.kind == "operator_retry"]
    assert len(resumes) == 1
    assert resumes[0].actor == "test:ops"
    assert resumes[0].detail["dead_letter"] == letter.id


async def _replay_concurrently(client: Client, letter: int, copies: int) -> list[object]:
    outcomes: list[object] = []

    async def one() -> None:
        try:
            outcomes.append(await client.replay(letter))
        except OperationRefused as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(copies):
            group.start_soon(one)
    return outcomes


async def test_a_non_retryable_error_skips_the_remaining_attempts(
    client: Client, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        run = await client.start("declined", {"_schema": pg_schema})
        done = await client.wait(run.id, timeout=30)
    assert done.status is RunStatus.FAILED
    assert len(await executions(pg_schema)) == 1
    [letter] = await client.dead_letters()
    assert letter.reason == "non-retryable error"
    assert letter.attempts == 1


async def test_a_four_step_saga_failing_at_step_three_compensates_two_then_one_exactly_once(
    client: Client, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        run = await client.start("saga", {"fail_at": "s3", "_schema": pg_schema})
        done = await client.wait(run.id, timeout=30)
    assert done.status is RunStatus.COMPENSATED
    ran = [(row["state"], row["kind"]) for row in await executions(pg_schema)]
    assert ran == [
        ("s1", "step"),
        ("s2", "step"),
        ("s3", "step"),
        ("s2", "compensation"),
        ("s1", "compensation"),
    ]
    assert done.data["s2_undone"] is True
    assert done.data["s1_undone"] is True
    kinds = [e.kind for e in await pg_store.history(run.id)]
    assert kinds.count(HistoryKind.COMPENSATION_SUCCEEDED) == 2


async def test_an_approval_resumes_on_its_signal_and_takes_its_timeout_path_otherwise(
    client: Client, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        waiting = await client.start("gate", {"_schema": pg_schema})
        await eventually(lambda: _awaiting(client, waiting.id))
        approved = await client.signal(waiting.id, "approve", {"approved_by": "erin"})
        assert approved.status is RunStatus.SUCCEEDED
        with pytest.raises(OperationRefused, match="is succeeded"):
            await client.signal(waiting.id, "approve")
        ignored = await client.start("gate", {"_schema": pg_schema})
        expired = await client.wait(ignored.id, timeout=30)
    assert approved.data["approved_by"] == "erin"
    assert expired.status is RunStatus.SUCCEEDED
    kinds = [e.kind for e in await pg_store.history(ignored.id)]
    assert "approval_timed_out" in kinds
    assert [row["state"] for row in await executions(pg_schema)] == ["expired"]


async def _awaiting(client: Client, run_id: str) -> bool:
    run = await client.get(run_id)
    return any(t.phase is Phase.AWAITING_SIGNAL for t in run.tokens)


async def test_operator_actions_that_make_no_sense_are_refused_and_change_nothing(
    client: Client, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        run = await client.start("gate", {"_schema": pg_schema})
        await eventually(lambda: _awaiting(client, run.id))
        before = await client.get(run.id)
        with pytest.raises(OperationRefused, match="only a suspended or failed run"):
            await client.retry(run.id)
        with pytest.raises(OperationRefused, match="not waiting for signal 'nope'; it waits for 'approve'"):
            await client.signal(run.id, "nope")
        cancelled = await client.cancel(run.id, compensate=False, reason="customer asked")
        assert cancelled.status is RunStatus.CANCELLED
        with pytest.raises(OperationRefused, match="is cancelled"):
            await client.cancel(run.id)
    from legato.errors import RunNotFound

    with pytest.raises(RunNotFound):
        await client.retry("00000000-0000-0000-0000-000000000000")
    after = await client.get(run.id)
    assert after.version == before.version + 1  # only the cancel applied
    cancel = [e for e in await pg_store.history(run.id) if e.kind == "operator_cancel"]
    assert cancel[0].actor == "test:ops"
    assert cancel[0].detail["reason"] == "customer asked"


async def test_retries_pending_when_a_worker_is_killed_fire_exactly_once_after_restart(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    env = worker_env(
        pg_schema,
        namespace,
        RECOVERY_DSN=PG_DSN,
        LEGATO_TIMER_LEASE="1",
        LEGATO_TIMER_POLL_INTERVAL="0.1",
        LEGATO_RELAY_GRACE="1",
    )
    log = tmp_path / "workers.log"
    client = Client(pg_store, rabbit, recovery.app)
    # Two failures each, 0.05 s then 0.1 s apart: while the worker lives, retries are pending.
    runs = [await client.start("retrying", {"fail_times": 2, "_schema": pg_schema}) for _ in range(40)]
    victim = spawn_worker("tests.apps.recovery:app", env, "--concurrency", "16", log=log)

    async def retries_pending() -> bool:
        current = await all_runs(pg_store)
        return sum(any(t.phase is Phase.RETRY_WAIT for t in r.tokens) for r in current) >= 5

    await eventually(retries_pending, timeout=60, interval=0.01)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    pending = [r for r in await all_runs(pg_store) if any(t.phase is Phase.RETRY_WAIT for t in r.tokens)]
    assert pending, "the kill should leave retries pending"
    survivors = [
        spawn_worker("tests.apps.recovery:app", env, "--concurrency", "16", log=log) for _ in range(2)
    ]
    try:
        finished = await wait_finished(pg_store, len(runs), timeout=120)
    finally:
        for process in survivors:
            process.send_signal(signal.SIGTERM)
        for process in survivors:
            process.wait(timeout=30)
    assert all(r.status is RunStatus.SUCCEEDED for r in finished), log.read_text()[-3000:]
    for run in finished:
        history = await pg_store.history(run.id)
        fired = collections.Counter(e.attempt for e in history if e.kind == "retry_started")
        assert fired == {2: 1, 3: 1}, (run.id, fired)
        assert run.data["succeeded_on"] == 3


async def test_a_worker_without_a_runs_version_leaves_its_timers_to_one_that_has_it(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    from legato import App, RetryPolicy, StepContext, Task, Workflow

    async def flaky_v2(ctx: StepContext) -> dict[str, int]:
        if ctx.attempt == 1:
            raise ConnectionError("first attempt fails")
        return {"attempt": ctx.attempt}

    v1 = Workflow("deploy", start="a", states={"a": Task(flaky_v2)})
    v2 = Workflow(
        "deploy",
        version=2,
        start="a",
        states={"a": Task(flaky_v2, retry=RetryPolicy(initial_delay=0.3, jitter=0))},
    )
    new, old = App([v1, v2]), App([v1])
    client = Client(pg_store, rabbit, new)
    quick = WorkerSettings(concurrency=4, timer_poll_interval=0.05, timer_lease=0.5)
    async with running(new, pg_store, rabbit, quick):
        run = await client.start("deploy", {})
        await eventually(lambda: _retry_pending(client, run.id))
    # Only the old deploy is left while the retry comes due: it must not die on it.
    # (If its timer poller died of it, leaving this block would raise.)
    async with running(old, pg_store, rabbit, quick):
        claimed = "SELECT count(*) FROM timers WHERE locked_until IS NOT NULL"
        await eventually(lambda: pg_store.pool.fetchval(claimed), timeout=10)
    assert (await client.get(run.id)).status is RunStatus.RUNNING
    async with running(new, pg_store, rabbit, quick):
        done = await client.wait(run.id, timeout=30)
    assert done.status is RunStatus.SUCCEEDED
    assert done.data["attempt"] == 2


async def _retry_pending(client: Client, run_id: str) -> bool:
    return any(t.phase is Phase.RETRY_WAIT for t in (await client.get(run_id)).tokens)


async def test_a_task_dead_lettered_by_an_old_worker_is_replayed_to_its_queue_after_the_rollout(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    from legato import App, StepContext, Task, Workflow

    async def step(ctx: StepContext) -> dict[str, int]:
        return {"version": ctx.workflow_version}

    v1 = Workflow("rollout", start="a", states={"a": Task(step)})
    v2 = Workflow("rollout", version=2, start="a", states={"a": Task(step)})
    new, old = App([v1, v2]), App([v1])
    client = Client(pg_store, rabbit, new, actor="ops")
    run = await client.start("rollout", {}, priority="high")  # a v2 run; its task is on the high queue
    # The new workers are gone (a rollback), so no one takes the v2 task over.
    async with running(old, pg_store, rabbit, replace(SETTINGS, handover=0.5)):
        [letter] = await eventually(client.dead_letters)
    assert letter.source == "message"
    assert "is this worker running an older deploy" in letter.reason
    async with running(new, pg_store, rabbit, SETTINGS):
        await client.replay(letter.id)
        done = await client.wait(run.id, timeout=30)
    assert done.status is RunStatus.SUCCEEDED
    assert done.data == {"version": 2}
    assert (await client.dead_letter(letter.id)).status == "replayed"
    assert await client.dead_letters() == []  # no new dead letter on the way


async def test_a_replay_that_cannot_be_published_leaves_the_dead_letter_open(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    from legato.store.base import PoisonMessage

    letter_id = await pg_store.record_poison(
        PoisonMessage("no workflow", rabbit.topology.unrouted_queue, "order.later", b"{}", "m-1", {}, "fp-r"),
        0.0,
    )
    await rabbit.close()  # the broker is gone when the operator replays
    client = Client(pg_store, rabbit, recovery.app, actor="ops")
    with pytest.raises(BrokerError):
        await client.replay(letter_id)
    assert (await client.dead_letter(letter_id)).status == "open"
    await rabbit.connect()
