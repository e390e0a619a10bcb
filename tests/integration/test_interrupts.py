"""Cancelling a run reaches its running handler, in a worker process."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import anyio

from legato import App, Client, OnDeadline, RetryPolicy, RunStatus, StepContext, Task, Workflow
from legato.app import load_app
from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.postgres import PostgresStore
from legato.worker.runtime import Worker, WorkerSettings
from tests.conftest import worker_env
from tests.integration.harness import eventually, finished, running, spawn_worker

APP = "tests.apps.inflight:app"


async def test_a_cancel_interrupts_a_handler_sleeping_for_a_minute_and_compensation_runs(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    client = Client(pg_store, rabbit, load_app(APP), actor="test")
    log = tmp_path / "worker.log"
    worker = spawn_worker(APP, worker_env(pg_schema, namespace), log=log)
    try:
        started = tmp_path / "started"
        run = await client.start("lingering", {"started": str(started)})
        await eventually(started.exists, timeout=30)
        cancelled_at = time.time()
        await client.cancel(run.id, reason="changed my mind")
        done = await client.result(run.id, timeout=30)
        finished_in = time.time() - cancelled_at
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    assert code == 0, log.read_text()
    assert done.status is RunStatus.CANCELLED, (done.status, log.read_text())
    history = await client.history(run.id)
    [interrupted] = [e for e in history if e.kind == "step_failed" and e.state == "linger"]
    assert interrupted.detail["error"]["type"] == "legato.worker.execute.HandlerInterrupted"
    assert "the run is compensating" in interrupted.detail["error"]["message"]
    assert interrupted.detail["outcome"] == "dropped while unwinding"
    # Interrupted at once, not after its minute: well within a second of the cancel.
    assert interrupted.at - cancelled_at < 1.0, interrupted.at - cancelled_at
    assert [e.state for e in history if e.kind == "compensation_succeeded"] == ["book"]
    assert finished_in < 5.0


def interrupt_app() -> tuple[App, dict[str, Any]]:
    """Handlers that say what they saw, for in-process workers."""
    seen: dict[str, Any] = {"started": anyio.Event(), "cancelled_seen": None}

    def polite(ctx: StepContext) -> dict[str, Any]:
        # A sync handler: it cannot be cancelled, so it looks at ctx.cancelled.
        anyio.from_thread.run_sync(seen["started"].set)
        for _ in range(6000):
            if ctx.cancelled:
                seen["cancelled_seen"] = True
                return {"stopped_early": True}
            threading.Event().wait(0.01)
        return {"stopped_early": False}

    def stubborn(ctx: StepContext) -> None:
        anyio.from_thread.run_sync(seen["started"].set)
        release: threading.Event = seen["release"]
        release.wait(60)

    async def sleepy(ctx: StepContext) -> None:
        seen["started"].set()
        await anyio.sleep(60)

    app = App(
        [
            Workflow("polite", start="work", states={"work": Task(polite)}),
            Workflow("stubborn", start="work", states={"work": Task(stubborn)}),
            Workflow(
                "late",
                start="work",
                sla=0.5,
                on_deadline=OnDeadline.FAIL,
                states={"work": Task(sleepy)},
            ),
            Workflow("slow", start="work", states={"work": Task(polite, timeout=0.3, retry=NO_RETRY)}),
        ]
    )
    return app, seen


NO_RETRY = RetryPolicy(max_attempts=1)
SETTINGS = WorkerSettings(concurrency=4, timer_poll_interval=0.05, interrupt_grace=0.5)


async def test_a_sync_handler_sees_ctx_cancelled_when_its_run_is_cancelled(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    app, seen = interrupt_app()
    client = Client(pg_store, rabbit, app, actor="test")
    async with running(app, pg_store, rabbit, SETTINGS) as worker:
        run = await client.start("polite", {})
        with anyio.fail_after(30):
            await seen["started"].wait()
        await client.cancel(run.id, compensate=False)
        await eventually(lambda: seen["cancelled_seen"], timeout=5)
        await eventually(lambda: not worker.inflight.running_attempts(), timeout=5)
    assert worker.inflight.interrupted == 1
    done = await client.get(run.id)
    assert done.status is RunStatus.CANCELLED
    kinds = [str(e.kind) for e in await client.history(run.id)]
    assert "step_interrupted" in kinds


async def test_a_sync_handler_that_ignores_the_interruption_is_abandoned_after_the_grace_period(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    app, seen = interrupt_app()
    seen["release"] = threading.Event()
    client = Client(pg_store, rabbit, app, actor="test")
    try:
        async with running(app, pg_store, rabbit, SETTINGS) as worker:
            run = await client.start("stubborn", {})
            with anyio.fail_after(30):
                await seen["started"].wait()
            await client.cancel(run.id, compensate=False)
            # Its slot comes back after the grace period, while the thread still runs.
            await eventually(lambda: not worker.inflight.running_attempts(), timeout=5)
            assert not seen["release"].is_set()
    finally:
        seen["release"].set()
    assert worker.inflight.interrupted == 1


async def test_a_run_deadline_that_fails_the_run_interrupts_its_handler(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    app, _ = interrupt_app()
    client = Client(pg_store, rabbit, app, actor="test")
    async with running(app, pg_store, rabbit, SETTINGS) as worker:
        run = await client.start("late", {})
        done = await client.result(run.id, timeout=30)
        assert done.status is RunStatus.FAILED
        await eventually(lambda: not worker.inflight.running_attempts(), timeout=5)
    assert worker.inflight.interrupted == 1
    kinds = [str(e.kind) for e in await client.history(run.id)]
    assert kinds.index("sla_missed") < kinds.index("step_interrupted")


async def test_a_sync_handler_past_its_timeout_sees_ctx_cancelled(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    app, seen = interrupt_app()
    client = Client(pg_store, rabbit, app, actor="test")
    async with running(app, pg_store, rabbit, SETTINGS):
        run = await client.start("slow", {})
        done = await client.result(run.id, timeout=30)
    assert seen["cancelled_seen"] is True
    assert done.status is RunStatus.FAILED
    [failed] = [e for e in await client.history(run.id) if e.kind == "step_failed"]
    # It returned within its grace, but past its timeout: the attempt failed.
    assert failed.detail["error"]["type"] == "legato.worker.execute.StepTimeout"


async def test_a_replayed_step_that_overtakes_the_resume_notification_is_not_interrupted(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    # The worker heard that the run failed; the replay's step reaches it through
    # RabbitMQ before the notification that the run is running again does (the
    # notification comes over another connection, and under load it can be late).
    fixed = {"on": False}

    async def charge(ctx: StepContext) -> dict[str, Any]:
        if not fixed["on"]:
            raise ValueError("bug in the handler")
        return {"charged": True}

    app = App([Workflow("pay", start="charge", retry=RetryPolicy.none(), states={"charge": Task(charge)})])
    client = Client(pg_store, rabbit, app, actor="test")
    async with running(app, pg_store, rabbit, SETTINGS):
        run = await client.start("pay", {})
        assert (await client.result(run.id, timeout=30)).status is RunStatus.FAILED
    [letter] = await client.dead_letters("pay")
    fixed["on"] = True
    await client.replay(letter.id)  # committed and published while no worker runs

    def heard_the_failure_late(worker: Worker) -> None:
        worker.inflight.run_changed(run.id, RunStatus.FAILED)

    async with running(app, pg_store, rabbit, SETTINGS, before=heard_the_failure_late) as worker:
        done = await finished(pg_store, run.id, timeout=30)
    assert done.status is RunStatus.SUCCEEDED, [
        (e.kind, dict(e.detail)) for e in await client.history(run.id)
    ]
    assert worker.inflight.interrupted == 0
