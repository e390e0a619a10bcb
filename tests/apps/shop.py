"""Workflows the integration tests run, in-process and in worker subprocesses."""

from __future__ import annotations

import os
import time
from typing import Any

import anyio

from legato import (
    App,
    Approval,
    Branch,
    Choice,
    Field,
    Parallel,
    RetryPolicy,
    StepContext,
    Succeed,
    Task,
    Workflow,
)

STEP_SLEEP = float(os.environ.get("SHOP_STEP_SLEEP", "0"))


async def validate(ctx: StepContext) -> dict[str, Any]:
    if STEP_SLEEP:
        await anyio.sleep(STEP_SLEEP)
    return {"total": ctx.data["qty"] * ctx.data["price"]}


async def reserve(ctx: StepContext) -> dict[str, Any]:
    if STEP_SLEEP:
        await anyio.sleep(STEP_SLEEP)
    return {"reserved": True}


def charge(ctx: StepContext) -> dict[str, Any]:
    """A sync handler: runs in the worker's thread pool."""
    if STEP_SLEEP:
        time.sleep(STEP_SLEEP)
    return {"charged": ctx.data["total"]}


async def ship(ctx: StepContext) -> dict[str, Any]:
    if STEP_SLEEP:
        await anyio.sleep(STEP_SLEEP)
    return {"shipped": True}


async def review(ctx: StepContext) -> dict[str, Any]:
    return {"reviewed": True}


order = Workflow(
    "order",
    triggers=("order.placed",),
    start="validate",
    retry=RetryPolicy(max_attempts=3, initial_delay=0.05, jitter=0),
    states={
        "validate": Task(validate, next="route"),
        "route": Choice([(Field("total") > 100, "review")], default="fulfil"),
        "review": Task(review, next="fulfil"),
        "fulfil": Parallel(
            [Branch("reserve", {"reserve": Task(reserve)}), Branch("charge", {"charge": Task(charge)})],
            next="ship",
        ),
        "ship": Task(ship, next="done"),
        "done": Succeed(),
    },
)

approval = Workflow(
    "approval",
    triggers=("refund.requested",),
    start="wait",
    states={"wait": Approval("approve", next="done"), "done": Succeed()},
)

app = App([order, approval])
