"""Workflows started over HTTP: by events, by webhooks, and directly."""

from __future__ import annotations

from typing import Any

from legato import App, Approval, StepContext, Succeed, Task, Workflow


async def greet(ctx: StepContext) -> dict[str, Any]:
    return {"greeting": f"hello {ctx.data.get('name', 'world')}"}


async def note(ctx: StepContext) -> dict[str, Any]:
    return {"noted": True}


greeting = Workflow("greet", triggers=("greet.requested",), start="greet", states={"greet": Task(greet)})

order = Workflow("order", triggers=("order.placed",), start="note", states={"note": Task(note)})

audit = Workflow("audit", triggers=("order.placed",), start="note", states={"note": Task(note)})

approval = Workflow(
    "approval",
    triggers=("refund.requested",),
    start="wait",
    states={"wait": Approval("approve", next="done"), "done": Succeed()},
)

delivery = Workflow(
    "delivery",
    triggers=("github.push", "stripe.payment_intent.succeeded"),
    start="note",
    states={"note": Task(note)},
)

app = App([greeting, order, audit, approval, delivery])
