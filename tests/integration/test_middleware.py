"""The app's step middleware on a real worker (Postgres, RabbitMQ): it wraps
every step and compensation attempt, sees the call, changes outcomes and adds
to logs; an error it raises is the attempt's failure; telemetry outside it
reports what is recorded; ``legato worker`` installs it from the app."""

from __future__ import annotations

import dataclasses
import logging
import signal
from collections import Counter
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import anyio

from legato import (
    App,
    NonRetryableError,
    RetryPolicy,
    RunStatus,
    StepCall,
    StepContext,
    StepOutcome,
    Succeed,
    Task,
    Workflow,
)
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.machine.run import StepKind
from legato.store.postgres import PostgresStore
from legato.telemetry.metrics import Metrics
from legato.worker.middleware import Next
from tests.apps import tenanted
from tests.conftest import worker_env
from tests.integration.harness import running, spawn_worker
from tests.integration.test_metrics import samples, value

TENANT: ContextVar[str] = ContextVar("tenant", default="-")
log = logging.getLogger("tests.middleware")

FAST = RetryPolicy(max_attempts=3, initial_delay=0.05, jitter=0)


class Kept(logging.Handler):
    """Records as a logging filter left them: with the tenant of the attempt."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((TENANT.get(), record.getMessage()))


class Audit:
    """Sees every attempt, sets the tenant for its logs, stamps what it saw into the output."""

    def __init__(self) -> None:
        self.calls: list[StepCall] = []

    async def __call__(self, call: StepCall, call_next: Next) -> StepOutcome:
        self.calls.append(call)
        token = TENANT.set(str(call.run.data["tenant"]))
        try:
            outcome = await call_next(call)
        finally:
            TENANT.reset(token)
        if outcome.ok and call.ctx.kind is StepKind.STEP:
            stamped = {**(outcome.output or {}), f"{call.ctx.state}_audited": call.ctx.attempt}
            return dataclasses.replace(outcome, output=stamped)
        return outcome


def reserve(ctx: StepContext) -> dict[str, Any]:  # sync: runs in a thread
    log.info("reserving %s", ctx.data["order"])
    return {"reserved": True}


async def release(ctx: StepContext) -> None:
    log.info("releasing %s", ctx.data["order"])


async def charge(ctx: StepContext) -> dict[str, Any]:
    log.info("charging %s, attempt %d", ctx.data["order"], ctx.attempt)
    if ctx.attempt == 1:
        raise ConnectionError("gateway timed out")
    if ctx.data.get("decline"):
        raise NonRetryableError("card declined")
    return {"charged": True}


ORDER = Workflow(
    "order",
    start="reserve",
    retry=FAST,
    states={
        "reserve": Task(reserve, next="charge", compensate=release),
        "charge": Task(charge, next="done"),
        "done": Succeed(),
    },
)

_ATTEMPT_KINDS = {
    "step_succeeded": StepKind.STEP,
    "step_failed": StepKind.STEP,
    "compensation_succeeded": StepKind.COMPENSATION,
    "compensation_failed": StepKind.COMPENSATION,
}


async def test_app_middleware_wraps_every_attempt_sees_the_call_changes_the_outcome_and_tags_logs(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    audit = Audit()
    app = App([ORDER], middleware=[audit])
    kept = Kept()
    log.addHandler(kept)
    log.setLevel(logging.INFO)
    client = Client(pg_store, rabbit, app)
    try:
        async with running(app, pg_store, rabbit):
            acme = await client.start("order", {"tenant": "acme", "order": "A-1"})
            globex = await client.start("order", {"tenant": "globex", "order": "G-7", "decline": True})
            acme = await client.wait(acme.id)
            globex = await client.wait(globex.id)
    finally:
        log.removeHandler(kept)

    assert acme.status is RunStatus.SUCCEEDED
    assert globex.status is RunStatus.COMPENSATED
    # Every attempt the worker recorded went through the middleware, once.
    for run in (acme, globex):
        recorded = Counter(
            (entry.state, entry.attempt, _ATTEMPT_KINDS[entry.kind])
            for entry in await client.history(run.id)
            if entry.kind in _ATTEMPT_KINDS
        )
        seen = Counter((c.ctx.state, c.ctx.attempt, c.ctx.kind) for c in audit.calls if c.run.id == run.id)
        assert seen == recorded
    assert ("reserve", 1, StepKind.COMPENSATION) in {
        (c.ctx.state, c.ctx.attempt, c.ctx.kind) for c in audit.calls if c.run.id == globex.id
    }
    # ... and saw the call as the handler would run it.
    for call in audit.calls:
        assert call.ctx.run_id == call.run.id
        assert call.workflow is ORDER
        assert call.task is ORDER.task(call.ctx.state)
        wanted = release if call.ctx.kind is StepKind.COMPENSATION else call.task.handler
        assert call.handler.function is wanted
    # The outcome it changed is what was recorded.
    assert acme.data["reserve_audited"] == 1
    assert acme.data["charge_audited"] == 2
    assert "charge_audited" not in globex.data
    # Every line a handler logged, sync or async, carries its run's tenant.
    assert sorted(kept.lines) == [
        ("acme", "charging A-1, attempt 1"),
        ("acme", "charging A-1, attempt 2"),
        ("acme", "reserving A-1"),
        ("globex", "charging G-7, attempt 1"),
        ("globex", "charging G-7, attempt 2"),
        ("globex", "releasing G-7"),
        ("globex", "reserving G-7"),
    ]


HANDLED: list[str] = []


async def work(ctx: StepContext) -> dict[str, Any]:
    HANDLED.append(f"{ctx.data['mode']}:{ctx.attempt}")
    if ctx.data["mode"] == "rescue":
        raise ValueError("the handler failed")
    return {"worked": True}


async def gate(call: StepCall, call_next: Next) -> StepOutcome:
    mode = call.run.data["mode"]
    if mode == "flaky" and call.ctx.attempt == 1:
        raise ConnectionError("tenant registry unreachable")
    if mode == "refuse":
        raise NonRetryableError("tenant suspended")
    outcome = await call_next(call)
    if mode == "rescue" and not outcome.ok:
        return dataclasses.replace(outcome, error=None, output={"rescued": True})
    return outcome


async def test_middleware_errors_fail_the_attempt_and_telemetry_reports_what_is_recorded(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    HANDLED.clear()
    app = App([Workflow("gated", start="work", retry=FAST, states={"work": Task(work)})], middleware=[gate])
    metrics = Metrics()
    client = Client(pg_store, rabbit, app)
    async with running(app, pg_store, rabbit, middleware=[metrics.middleware()]):
        started = {m: await client.start("gated", {"mode": m}) for m in ("flaky", "refuse", "rescue")}
        runs = {m: await client.wait(r.id) for m, r in started.items()}

    # Raised before the handler on attempt 1: a failed attempt, retried by the policy.
    assert runs["flaky"].status is RunStatus.SUCCEEDED
    failed = [e for e in await client.history(runs["flaky"].id) if e.kind == "step_failed"]
    assert [(e.attempt, e.detail["error"]["type"]) for e in failed] == [(1, "ConnectionError")]
    # NonRetryableError from a middleware skips the retries, as from a handler.
    assert runs["refuse"].status is RunStatus.FAILED
    assert runs["refuse"].error is not None
    assert runs["refuse"].error.message == "tenant suspended"
    # A middleware turned the handler's failure into a success.
    assert runs["rescue"].status is RunStatus.SUCCEEDED
    assert runs["rescue"].data["rescued"] is True
    assert sorted(HANDLED) == ["flaky:2", "rescue:1"]
    # Metrics sit outside the app's middleware: they count the outcomes recorded.
    found = samples(metrics.render().decode())
    attempts = {"workflow": "gated", "state": "work", "kind": "step"}
    assert value(found, "legato_step_attempts_total", **attempts, outcome="failed") == 2
    assert value(found, "legato_step_attempts_total", **attempts, outcome="succeeded") == 2


async def test_legato_worker_installs_the_app_middleware(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    output = tmp_path / "worker.log"
    process = spawn_worker("tests.apps.tenanted:app", worker_env(pg_schema, namespace), log=output)
    try:
        client = Client(pg_store, rabbit, tenanted.app)
        run = await client.start("greet", {"tenant": "initech"})
        run = await client.wait(run.id, timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await anyio.to_thread.run_sync(process.wait)
    assert code == 0, output.read_text()
    assert run.status is RunStatus.SUCCEEDED
    assert run.data["stamped_by"] == process.pid
    assert "tenant=initech step=greet attempt=1" in output.read_text()
