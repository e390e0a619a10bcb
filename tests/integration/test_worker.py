"""The worker end to end on real Postgres and RabbitMQ."""

from __future__ import annotations

import anyio
import orjson

from legato import App, RetryPolicy, RunStatus, StepContext, Task, Workflow
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.machine.run import Phase, Run
from legato.machine.vocabulary import HistoryKind
from legato.store.base import DeadLetterRecord
from legato.store.postgres import PostgresStore
from tests.apps.shop import app as shop
from tests.integration.harness import all_runs, eventually, running, wait_finished


async def test_an_event_starts_a_run_that_goes_through_choice_and_parallel(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with running(shop, pg_store, rabbit):
        await rabbit.publish_event("order.placed", orjson.dumps({"qty": 3, "price": 50}), message_id="evt-1")
        [run] = await wait_finished(pg_store, 1)
    assert run.status is RunStatus.SUCCEEDED
    assert run.data == {
        "qty": 3,
        "price": 50,
        "total": 150,
        "reviewed": True,
        "reserved": True,
        "charged": 150,
        "shipped": True,
    }
    history = await pg_store.history(run.id)
    succeeded = sorted(e.state or "" for e in history if e.kind == "step_succeeded")
    assert succeeded == ["charge", "reserve", "review", "ship", "validate"]
    assert [e.kind for e in history].count(HistoryKind.JOINED) == 1
    versions = sorted({e.version for e in history})
    assert versions == list(range(1, run.version + 1))


async def test_the_same_message_id_twice_starts_one_run(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with running(shop, pg_store, rabbit):
        body = orjson.dumps({"qty": 1, "price": 5})
        for _ in range(3):
            await rabbit.publish_event("order.placed", body, message_id="evt-dup")
        await rabbit.publish_event("order.placed", body, message_id="evt-other")
        runs = await wait_finished(pg_store, 2)
        # Give the duplicates every chance to (wrongly) start runs: they were
        # published before the second event, so they have been consumed.
        assert len(await all_runs(pg_store)) == 2
    assert {r.idempotency_key for r in runs} == {"order:evt-dup", "order:evt-other"}


async def test_malformed_and_unwanted_events_are_dead_lettered_and_the_worker_goes_on(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with running(shop, pg_store, rabbit):
        await rabbit.publish_event("order.placed", b"<xml/>", message_id="bad-1")
        await rabbit.publish_event("order.cancelled", b"{}", message_id="bad-2")
        await rabbit.publish_event("order.placed", b"[1, 2]", message_id="bad-3")
        await rabbit.publish_event("order.placed", orjson.dumps({"qty": 1, "price": 1}), message_id="good")
        [run] = await wait_finished(pg_store, 1)
        assert run.status is RunStatus.SUCCEEDED
        letters = await eventually(lambda: _three(pg_store))
    reasons = sorted(letter.reason for letter in letters)
    assert any("body is not valid JSON" in r for r in reasons)
    assert any("no workflow is triggered by event 'order.cancelled'" in r for r in reasons)
    assert any("must be a JSON object" in r for r in reasons)
    queued = await rabbit.dead_lettered()
    assert sorted(h["x-legato-reason"] for _, h in queued) == sorted(reasons)


async def _three(store: PostgresStore) -> list[DeadLetterRecord] | None:
    letters = await store.list_dead_letters()
    return letters if len(letters) >= 3 else None


async def test_a_signal_sent_as_a_message_resumes_an_approval(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with running(shop, pg_store, rabbit):
        await rabbit.publish_event("refund.requested", b'{"amount": 10}', message_id="r-1")
        [run] = await eventually(lambda: _awaiting(pg_store))
        client = Client(pg_store, rabbit, shop, actor="test")
        await client.send_signal_message(run.id, "approve", {"approved_by": "dora"})
        [done] = await wait_finished(pg_store, 1)
    assert done.status is RunStatus.SUCCEEDED
    assert done.data["approved_by"] == "dora"
    signal = [e for e in await pg_store.history(done.id) if e.kind == "signal_received"]
    assert signal[0].actor == "test"


async def _awaiting(store: PostgresStore) -> list[Run] | None:
    runs = await all_runs(store)
    ready = [r for r in runs if any(t.phase is Phase.AWAITING_SIGNAL for t in r.tokens)]
    return ready or None


async def test_a_step_that_times_out_is_retried(pg_store: PostgresStore, rabbit: RabbitMQBroker) -> None:
    calls: list[int] = []

    async def slow_once(ctx: StepContext) -> dict[str, int]:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            await anyio.sleep(30)
        return {"attempt": ctx.attempt}

    app = App(
        [
            Workflow(
                "slow",
                start="a",
                states={"a": Task(slow_once, timeout=0.2, retry=RetryPolicy(initial_delay=0.01))},
            )
        ]
    )
    async with running(app, pg_store, rabbit):
        client = Client(pg_store, rabbit, app)
        run = await client.start("slow", {})
        done = await client.wait(run.id, timeout=20)
    assert done.status is RunStatus.SUCCEEDED
    assert calls == [1, 2]
    failed = [e for e in await pg_store.history(run.id) if e.kind == "step_failed"]
    assert failed[0].detail["error"]["type"] == "legato.worker.execute.StepTimeout"


async def test_graceful_shutdown_lets_in_flight_steps_finish(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    started = anyio.Event()
    release = anyio.Event()

    async def blocking(ctx: StepContext) -> dict[str, bool]:
        started.set()
        await release.wait()
        return {"finished": True}

    app = App([Workflow("block", start="a", states={"a": Task(blocking)})])
    client = Client(pg_store, rabbit, app)
    async with anyio.create_task_group() as group, running(app, pg_store, rabbit) as worker:
        run = await client.start("block", {})
        await started.wait()
        worker.stop()
        # Stopping: no new work is consumed, but the step in flight completes.
        group.start_soon(_release_later, release)
    done = await pg_store.load_run(run.id)
    assert done is not None
    assert done.status is RunStatus.SUCCEEDED


async def _release_later(release: anyio.Event) -> None:
    await anyio.sleep(0.2)
    release.set()


async def test_a_step_cut_off_by_the_grace_period_is_requeued_and_finished_by_the_next_worker(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    attempts: list[str] = []

    async def stubborn(ctx: StepContext) -> dict[str, bool]:
        attempts.append(ctx.idempotency_key)
        if len(attempts) == 1:
            await anyio.sleep(60)
        return {"done": True}

    from legato.worker.runtime import WorkerSettings

    app = App([Workflow("stubborn", start="a", states={"a": Task(stubborn)})])
    client = Client(pg_store, rabbit, app)
    async with running(app, pg_store, rabbit, WorkerSettings(concurrency=4, grace=0.2)) as worker:
        run = await client.start("stubborn", {})
        await eventually(lambda: len(attempts) == 1)
        worker.stop()
    assert (await client.get(run.id)).status is RunStatus.RUNNING
    async with running(app, pg_store, rabbit):
        done = await client.wait(run.id, timeout=20)
    assert done.status is RunStatus.SUCCEEDED
    # The same attempt, delivered again: the handler saw one idempotency key twice.
    assert attempts[0] == attempts[1]
