"""Workflows for the steps-in-flight tests (early signals, ...), run by real
worker processes; what a handler waits for is steered by the run's data."""

from __future__ import annotations

from typing import Any

import anyio

from legato import App, Approval, StepContext, Succeed, Task, Workflow


async def hold(ctx: StepContext) -> dict[str, Any]:
    """Run until the file named by the run's ``gate`` exists: the test decides
    when the run may go on to its approvals."""
    gate = anyio.Path(str(ctx.data["gate"]))
    while not await gate.exists():
        await anyio.sleep(0.02)
    return {"prepared": True}


two_approvals = Workflow(
    "two_approvals",
    start="prepare",
    states={
        "prepare": Task(hold, next="first"),
        "first": Approval("approve", next="second"),
        "second": Approval("approve", next="done"),
        "done": Succeed(),
    },
)


async def pause(ctx: StepContext) -> None:
    await anyio.sleep(float(str(ctx.data.get("hold", 0))))


held = Workflow("held", start="pause", states={"pause": Task(pause, next="done"), "done": Succeed()})


async def book(ctx: StepContext) -> dict[str, Any]:
    return {"booked": True}


async def unbook(ctx: StepContext) -> dict[str, Any]:
    return {"unbooked": True}


async def linger(ctx: StepContext) -> None:
    """Say it started (a file named by the run's data), then sleep for a minute."""
    await anyio.Path(str(ctx.data["started"])).touch()
    await anyio.sleep(60)


lingering = Workflow(
    "lingering",
    start="book",
    states={
        "book": Task(book, compensate=unbook, next="linger"),
        "linger": Task(linger, next="done"),
        "done": Succeed(),
    },
)

app = App([two_approvals, held, lingering])
