"""A three-step workflow whose middle step fails once: the tracing tests' run.

``on_first_failure`` (in-process tests) or ``TRACED_STOP_ON_FAILURE`` (worker
subprocesses) stops the worker that ran the failed attempt, so that the retry
runs on another worker.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from legato import App, RetryPolicy, StepContext, Task, Workflow

on_first_failure: Callable[[], None] | None = None


async def book(ctx: StepContext) -> dict[str, Any]:
    return {"booked": True}


async def pay(ctx: StepContext) -> dict[str, Any]:
    if ctx.attempt == 1:
        if on_first_failure is not None:
            on_first_failure()
        if os.environ.get("TRACED_STOP_ON_FAILURE"):
            os.kill(os.getpid(), signal.SIGTERM)
        raise ConnectionError("payment gateway timed out")
    return {"paid": True}


async def notify(ctx: StepContext) -> dict[str, Any]:
    return {"notified": True}


trip = Workflow(
    "trip",
    triggers=("trip.booked",),
    start="book",
    retry=RetryPolicy(max_attempts=3, initial_delay=0.3, jitter=0),
    states={
        "book": Task(book, next="pay"),
        "pay": Task(pay, next="notify"),
        "notify": Task(notify),
    },
)

app = App([trip])
