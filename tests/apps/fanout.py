"""A map over the items of an event, for worker processes: each item's handler
appends its start and end times to the file named by ``FANOUT_LOG``."""

from __future__ import annotations

import os
import time
from typing import Any

import anyio

from legato import App, Branch, Map, RetryPolicy, StepContext, Task, Workflow

STEP_SLEEP = float(os.environ.get("FANOUT_STEP_SLEEP", "0"))


def _record(line: str) -> None:
    path = os.environ.get("FANOUT_LOG")
    if path:
        # One small O_APPEND write per line: lines from several processes do not interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


async def work(ctx: StepContext) -> dict[str, Any]:
    started = time.time()
    if STEP_SLEEP:
        await anyio.sleep(STEP_SLEEP)
    item = ctx.data["item"]
    _record(f"{ctx.run_id} {ctx.data['index']} {ctx.attempt} {started} {time.time()}\n")
    return {"double": item * 2}


async def finish(ctx: StepContext) -> dict[str, Any]:
    return {"finished": len(ctx.data["results"])}


fanout = Workflow(
    "fanout",
    triggers=("fanout.start",),
    start="each",
    retry=RetryPolicy(max_attempts=5, initial_delay=0.1),
    states={
        "each": Map("items", Branch("work", {"work": Task(work)}), next="done", max_concurrency=10),
        "done": Task(finish),
    },
)

app = App([fanout])
