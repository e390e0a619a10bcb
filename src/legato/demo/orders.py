"""An order workflow: validate, route on the total, fulfil in parallel, ship.

Large orders wait for a person to approve them; stock and payment are
reserved and charged in parallel, each with a compensation, so an order that
cannot ship is unwound (saga). ``legato worker legato.demo.orders:app`` runs it.
"""

from __future__ import annotations

from typing import Any

from legato import (
    App,
    Approval,
    Branch,
    Choice,
    Cron,
    Fail,
    Field,
    NonRetryableError,
    Parallel,
    RetryPolicy,
    StepContext,
    Succeed,
    Task,
    Workflow,
)

# Quick retries so that the demo shows them without waiting long.
QUICK_RETRY = RetryPolicy(max_attempts=4, initial_delay=0.2, factor=2.0, max_delay=2.0)


async def validate_order(ctx: StepContext) -> dict[str, Any]:
    items = ctx.data.get("items") or []
    if not items:
        raise NonRetryableError("an order needs at least one item")
    total = sum(item["qty"] * item["price"] for item in items)
    return {"total": round(total, 2)}


async def reserve_stock(ctx: StepContext) -> dict[str, Any]:
    return {"reservation": f"R-{ctx.data['order_id']}"}


async def release_stock(ctx: StepContext) -> dict[str, Any]:
    return {"reservation": None, "stock_released": True}


async def charge_payment(ctx: StepContext) -> dict[str, Any]:
    if ctx.data.get("customer") == "flaky-bank" and ctx.attempt < 3:
        raise ConnectionError("payment gateway timed out")
    return {"payment": f"P-{ctx.data['order_id']}", "charged": ctx.data["total"]}


async def refund_payment(ctx: StepContext) -> dict[str, Any]:
    return {"refunded": ctx.data.get("charged", 0)}


async def ship_order(ctx: StepContext) -> dict[str, Any]:
    if ctx.data.get("address") == "nowhere":
        raise NonRetryableError("the carrier does not deliver to 'nowhere'")
    return {"tracking": f"T-{ctx.data['order_id']}"}


orders = Workflow(
    name="order",
    version=1,
    triggers=("order.placed",),
    start="validate",
    retry=QUICK_RETRY,
    sla=60.0,
    description="Validate, approve large orders, reserve stock and charge in parallel, ship.",
    search=("order_id",),
    states={
        "validate": Task(validate_order, next="route"),
        "route": Choice([(Field("total") > 1000, "review")], default="fulfil"),
        "review": Approval(signal="approve", next="fulfil", timeout=600, on_timeout="rejected"),
        "fulfil": Parallel(
            branches=[
                Branch("reserve", {"reserve": Task(reserve_stock, compensate=release_stock)}),
                Branch("charge", {"charge": Task(charge_payment, compensate=refund_payment)}),
            ],
            next="ship",
        ),
        "ship": Task(ship_order, next="done"),
        "done": Succeed(),
        "rejected": Fail("NotApproved", "nobody approved the order in time"),
    },
)


async def summarise(ctx: StepContext) -> dict[str, Any]:
    return {"report": ctx.data["report"], "sent_to": "ops@example.com"}


daily_report = Workflow(
    name="daily-report",
    start="summarise",
    description="Started by a schedule: weekdays at 09:00, Paris time.",
    states={"summarise": Task(summarise, next="done"), "done": Succeed()},
    schedules=[Cron("0 9 * * MON-FRI", tz="Europe/Paris", name="daily-report", input={"report": "orders"})],
)

app = App([orders, daily_report])
