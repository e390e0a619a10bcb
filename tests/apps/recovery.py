"""Workflows for the error-recovery tests; behaviour is steered by the run's data
so that the same app works in-process and in worker subprocesses."""

from __future__ import annotations

import os
from typing import Any

import asyncpg

from legato import (
    App,
    Approval,
    NonRetryableError,
    RetryPolicy,
    StepContext,
    Succeed,
    Task,
    Workflow,
)

QUICK = RetryPolicy(max_attempts=5, initial_delay=0.05, factor=2.0, max_delay=1.0, jitter=0.1)
FIXED: dict[str, bool] = {"handler": False}
"""Flipped by tests to 'deploy a fix' for the always-failing handler (in-process only)."""


async def record(ctx: StepContext) -> None:
    """Write every handler execution to a table, so tests can count executions."""
    dsn = os.environ.get("RECOVERY_DSN")
    schema = ctx.data.get("_schema")
    if not dsn or not schema:
        return
    conn = await asyncpg.connect(dsn, server_settings={"search_path": str(schema)})
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS executions (run_id text, state text, kind text, attempt int, at timestamptz DEFAULT clock_timestamp())"
        )
        await conn.execute(
            "INSERT INTO executions (run_id, state, kind, attempt) VALUES ($1, $2, $3, $4)",
            ctx.run_id,
            ctx.state,
            ctx.kind.value,
            ctx.attempt,
        )
    finally:
        await conn.close()


async def flaky(ctx: StepContext) -> dict[str, Any]:
    await record(ctx)
    if ctx.attempt <= int(ctx.data.get("fail_times", 0)):
        raise ConnectionError(f"downstream unavailable (attempt {ctx.attempt})")
    return {"succeeded_on": ctx.attempt}


async def broken(ctx: StepContext) -> dict[str, Any]:
    await record(ctx)
    if not FIXED["handler"]:
        raise ValueError("bug in the handler")
    return {"fixed": True}


async def refuse(ctx: StepContext) -> None:
    await record(ctx)
    raise NonRetryableError("card declined")


async def saga_step(ctx: StepContext) -> dict[str, Any]:
    await record(ctx)
    if ctx.state == ctx.data.get("fail_at"):
        raise NonRetryableError(f"{ctx.state} cannot be done")
    return {f"{ctx.state}_done": True}


async def saga_undo(ctx: StepContext) -> dict[str, Any]:
    await record(ctx)
    return {f"{ctx.state}_undone": True}


retrying = Workflow(
    "retrying", start="call", retry=QUICK, states={"call": Task(flaky, next="done"), "done": Succeed()}
)
fragile = Workflow("fragile", start="call", retry=QUICK, states={"call": Task(broken)})
declined = Workflow("declined", start="pay", retry=QUICK, states={"pay": Task(refuse)})
saga = Workflow(
    "saga",
    start="s1",
    retry=QUICK,
    states={
        "s1": Task(saga_step, next="s2", compensate=saga_undo),
        "s2": Task(saga_step, next="s3", compensate=saga_undo),
        "s3": Task(saga_step, next="s4", compensate=saga_undo),
        "s4": Task(saga_step, compensate=saga_undo),
    },
)
gate = Workflow(
    "gate",
    start="approve",
    states={
        "approve": Approval("approve", next="go", timeout=0.5, on_timeout="expired"),
        "go": Succeed(),
        "expired": Task(flaky),
    },
)

desk = Workflow(
    "desk",
    start="approve",
    states={"approve": Approval("approve", timeout=600)},
    search=("_schema", "ticket.id"),
)

app = App([retrying, fragile, declined, saga, gate, desk])
