"""Workflows for the steps-in-flight tests (early signals, ...), run by real
worker processes; what a handler waits for is steered by the run's data."""

from __future__ import annotations

from typing import Any

import anyio

from legato import App, Approval, RetryPolicy, StepContext, Succeed, Task, Workflow


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


async def crawl(ctx: StepContext) -> dict[str, Any]:
    """Work through ``pages`` pages of ``page_time`` seconds, resuming after the
    last page an earlier attempt reported; say each start in the ``log`` file.
    With ``hang_at``, the first attempt stops at that page until the ``gate`` file
    exists (a worker to kill mid-step)."""
    first = int((ctx.heartbeat_details or {}).get("page", 0)) + 1
    log = anyio.Path(str(ctx.data["log"]))
    async with await anyio.open_file(str(log), "a") as out:
        await out.write(f"{ctx.attempt} {first}\n")
    for page in range(first, int(str(ctx.data["pages"])) + 1):
        if ctx.attempt == 1 and page == ctx.data.get("hang_at"):
            gate = anyio.Path(str(ctx.data["gate"]))
            while not await gate.exists():
                await anyio.sleep(0.05)
        await anyio.sleep(float(str(ctx.data["page_time"])))
        if ctx.data.get("beat", True):
            ctx.heartbeat({"page": page})
    return {"crawled_from": first}


leased = Workflow(
    "leased",
    start="crawl",
    retry=RetryPolicy(max_attempts=3, initial_delay=0.1, jitter=0),
    states={"crawl": Task(crawl, heartbeat_timeout=1.0, next="done"), "done": Succeed()},
)

patient = Workflow(
    "patient",
    start="crawl",
    retry=RetryPolicy(max_attempts=3, initial_delay=0.1, jitter=0),
    states={"crawl": Task(crawl, heartbeat_timeout=60, next="done"), "done": Succeed()},
)

app = App([two_approvals, held, lingering, leased, patient])
