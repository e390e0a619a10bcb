"""A parent whose map starts a child run per item, for worker processes: each
child's handler appends its run id and item to the file named by ``FAMILY_LOG``."""

from __future__ import annotations

import os
from typing import Any

import anyio

from legato import App, Branch, Child, Map, RetryPolicy, StepContext, Task, Workflow

STEP_SLEEP = float(os.environ.get("FAMILY_STEP_SLEEP", "0"))


def _record(line: str) -> None:
    path = os.environ.get("FAMILY_LOG")
    if path:
        # One small O_APPEND write per line: lines from several processes do not interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


async def work(ctx: StepContext) -> dict[str, Any]:
    if STEP_SLEEP:
        await anyio.sleep(STEP_SLEEP)
    _record(f"{ctx.run_id} {ctx.data['n']} {ctx.attempt}\n")
    return {"double": ctx.data["n"] * 2}


async def check(ctx: StepContext) -> dict[str, Any]:
    return {"checked": True}


async def total(ctx: StepContext) -> dict[str, Any]:
    return {"total": sum(r["double"] for r in ctx.data["results"])}


member = Workflow(
    "member",
    start="work",
    retry=RetryPolicy(max_attempts=5, initial_delay=0.1),
    states={"work": Task(work, next="check"), "check": Task(check)},
)

family = Workflow(
    "family",
    triggers=("family.start",),
    start="each",
    retry=RetryPolicy(max_attempts=5, initial_delay=0.1),
    states={
        "each": Map(
            "items",
            Branch("call", {"call": Child("member", input={"n": "item"})}),
            next="sum",
            max_concurrency=8,
        ),
        "sum": Task(total, next="last"),
        "last": Child("member", input={"n": "total"}, output_key="last"),
    },
)

app = App([member, family])
