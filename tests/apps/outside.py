"""Workflows for completion tokens and pause/resume, run by real worker
processes; handlers say what they did in files named by the run's data."""

from __future__ import annotations

from typing import Any

import anyio

from legato import App, CompleteLater, RetryPolicy, StepContext, Succeed, Task, Workflow


async def _note(path: Any, line: str) -> None:
    async with await anyio.open_file(str(path), "a") as handle:
        await handle.write(line + "\n")


async def ask(ctx: StepContext) -> CompleteLater | None:
    """Hand the step's completion out: the token goes to the file ``tokens``
    (the outside system), one line per attempt."""
    timeout = ctx.data.get("timeout")
    if ctx.data.get("marker"):
        later = CompleteLater(float(str(timeout)) if timeout is not None else None)
        await _note(ctx.data["tokens"], f"{ctx.attempt} {later.token}")
        return later
    token = ctx.complete_later(float(str(timeout)) if timeout is not None else None)
    await _note(ctx.data["tokens"], f"{ctx.attempt} {token}")
    return None


async def after(ctx: StepContext) -> dict[str, Any]:
    return {"after_saw": ctx.data.get("answer")}


handoff = Workflow(
    "handoff",
    start="ask",
    states={
        "ask": Task(ask, next="after", retry=RetryPolicy(max_attempts=2, initial_delay=0.1, jitter=0)),
        "after": Task(after, next="done"),
        "done": Succeed(),
    },
)


async def step(ctx: StepContext) -> dict[str, Any]:
    """Say it started; the first step then waits for the file ``gate``."""
    await _note(ctx.data["log"], f"{ctx.state} {ctx.attempt}")
    if ctx.state == "first":
        gate = anyio.Path(str(ctx.data["gate"]))
        while not await gate.exists():
            await anyio.sleep(0.02)
    return {ctx.state: True}


paced = Workflow(
    "paced",
    start="first",
    states={
        "first": Task(step, next="second"),
        "second": Task(step, next="third"),
        "third": Task(step, next="done"),
        "done": Succeed(),
    },
)

app = App([handoff, paced])
