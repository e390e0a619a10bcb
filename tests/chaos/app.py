"""The workflow the chaos workers run: a chain, a parallel step, a retry and a compensation.

Every handler execution is written down, by the handler, before its effect:
one line per execution in a file of its process (an ``O_APPEND`` write, so a
SIGKILL cannot tear it). The verdict compares those records with the database.
"""

from __future__ import annotations

import os
import time
from typing import Any

from legato import App, Branch, NonRetryableError, Parallel, RetryPolicy, StepContext, Succeed, Task, Workflow

EVENT = "chaos.order"
FAILING_STATE = "settle"
"""Where a doomed run fails for good, so that its earlier steps are compensated."""

_records: int | None = None


def record(ctx: StepContext) -> None:
    global _records
    if _records is None:
        folder = os.environ["CHAOS_RECORDS"]
        _records = os.open(f"{folder}/{os.getpid()}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_records, f"{time.time():.3f} {ctx.idempotency_key}\n".encode())


async def step(ctx: StepContext) -> dict[str, Any]:
    record(ctx)
    return {f"{ctx.state}_done": True}


async def flaky(ctx: StepContext) -> dict[str, Any]:
    record(ctx)
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt always fails (a retry per run)")
    return {"flaky_done": ctx.attempt}


async def settle(ctx: StepContext) -> dict[str, Any]:
    record(ctx)
    if ctx.data.get("doomed"):
        raise NonRetryableError("doomed: the saga unwinds")
    return {"settled": True}


async def undo(ctx: StepContext) -> dict[str, Any]:
    record(ctx)
    return {f"{ctx.state}_undone": True}


chaos = Workflow(
    "chaos",
    triggers=(EVENT,),
    start="a",
    retry=RetryPolicy(max_attempts=5, initial_delay=0.2, factor=2.0, jitter=0),
    states={
        "a": Task(step, next="b", compensate=undo),
        "b": Task(step, next="fan", compensate=undo),
        "fan": Parallel(
            [Branch("x", {"x": Task(step)}), Branch("y", {"y": Task(step)})],
            next="flaky",
        ),
        "flaky": Task(flaky, next=FAILING_STATE),
        FAILING_STATE: Task(settle, next="done"),
        "done": Succeed(),
    },
)

app = App([chaos])
