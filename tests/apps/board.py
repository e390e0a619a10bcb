"""Workflows for the dashboard's browser tests: orders whose payment can be
switched off, and refunds that wait for an approval."""

from __future__ import annotations

from typing import Any

from legato import App, Approval, RetryPolicy, StepContext, Succeed, Task, Workflow


class Payments:
    up = True


async def validate(ctx: StepContext) -> dict[str, Any]:
    return {"total": ctx.data.get("qty", 1) * 20}


async def charge(ctx: StepContext) -> dict[str, Any]:
    if not Payments.up:
        raise ConnectionError("payment gateway timed out")
    return {"charged": ctx.data["total"]}


async def ship(ctx: StepContext) -> dict[str, Any]:
    return {"shipped": True}


order = Workflow(
    "order",
    triggers=("order.placed",),
    start="validate",
    sla=60,
    retry=RetryPolicy(max_attempts=2, initial_delay=0.05, jitter=0),
    states={
        "validate": Task(validate, next="charge"),
        "charge": Task(charge, next="ship"),
        "ship": Task(ship),
    },
    search=("qty",),
)

refund = Workflow(
    "refund",
    triggers=("refund.requested",),
    start="check",
    states={
        "check": Task(validate, next="approve"),
        "approve": Approval("approve", next="done"),
        "done": Succeed(),
    },
)

app = App([order, refund])
