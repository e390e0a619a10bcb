"""An order whose lines are each reserved by a child workflow, through a map.

``reserve_line`` is a workflow of its own (reserve the stock, price the line;
releasing the stock is its compensation). The ``order`` workflow maps over
its lines, two at a time, and each item is a child run of ``reserve_line``:
one child per line and attempt, created in the same transaction as the step
that starts it, its outcome returned to the order through the outbox.

When a line cannot be reserved, its child fails (the order's retry policy
starts a second child for it, which fails too), the map fails, and the order
unwinds: every line reserved so far is released, by compensating its child
run through the child's own compensation. Cancelling an order that waits on
a child cancels the child, which releases what it held.

    python -m examples.order_children
"""

from __future__ import annotations

from typing import Any

import anyio

from examples._run import with_worker
from legato import (
    App,
    Approval,
    Branch,
    Child,
    Client,
    Map,
    NonRetryableError,
    RetryPolicy,
    Run,
    RunStatus,
    StepContext,
    Task,
    Workflow,
)

STOCK = {"apple": 10, "pear": 5, "plum": 0}
LEDGER: list[str] = []


async def reserve(ctx: StepContext) -> dict[str, Any]:
    if STOCK.get(ctx.data["sku"], 0) < ctx.data["qty"]:
        raise NonRetryableError(f"no stock for {ctx.data['sku']}")
    LEDGER.append(f"reserve {ctx.data['sku']} ({ctx.run_id[:8]})")
    return {"reserved": ctx.data["qty"]}


async def release(ctx: StepContext) -> None:
    LEDGER.append(f"release {ctx.data['sku']} ({ctx.run_id[:8]})")


async def price(ctx: StepContext) -> dict[str, Any]:
    return {"amount": ctx.data["reserved"] * 3}


async def charge(ctx: StepContext) -> dict[str, Any]:
    total = sum(line["amount"] for line in ctx.data["lines_reserved"])
    LEDGER.append(f"charge {total}")
    return {"charged": total}


reserve_line = Workflow(
    "reserve_line",
    start="reserve",
    states={
        "reserve": Task(reserve, next="price", compensate=release),
        "price": Task(price),
    },
)

order = Workflow(
    "order",
    start="lines",
    retry=RetryPolicy(max_attempts=2, initial_delay=0.05),
    states={
        "lines": Map(
            "order.lines",
            Branch(
                "reserve", {"reserve": Child("reserve_line", input={"sku": "item.sku", "qty": "item.qty"})}
            ),
            next="charge",
            max_concurrency=2,
            output_key="lines_reserved",
        ),
        "charge": Task(charge),
    },
)

hold_line = Workflow(
    "hold_line",
    start="reserve",
    states={
        "reserve": Task(reserve, next="confirm", compensate=release),
        "confirm": Approval("confirm"),
    },
)

held_order = Workflow(
    "held_order",
    start="hold",
    states={"hold": Child("hold_line", input={"sku": "line.sku", "qty": "line.qty"})},
)

# A child's workflow is registered before the workflows that start it.
app = App([reserve_line, order, hold_line, held_order])


async def scenario(client: Client) -> list[Run]:
    fruit = [{"sku": "apple", "qty": 2}, {"sku": "pear", "qty": 1}, {"sku": "apple", "qty": 1}]
    good = await client.start("order", {"order": {"lines": fruit}})
    done = await client.wait(good.id, timeout=30)
    bad = await client.start("order", {"order": {"lines": [*fruit, {"sku": "plum", "qty": 1}]}})
    failed = await client.wait(bad.id, timeout=30)
    held = await client.start("held_order", {"line": {"sku": "pear", "qty": 1}})
    await _until_child_waits(client, held.id)
    await client.cancel(held.id, reason="the customer changed their mind")
    return [done, failed, await client.wait(held.id, timeout=30)]


async def _until_child_waits(client: Client, run_id: str) -> None:
    with anyio.fail_after(30):
        while True:
            children = await client.children(run_id)
            if (
                children
                and children[0].status is RunStatus.RUNNING
                and "confirm" in children[0].current_states
            ):
                return
            await anyio.sleep(0.02)


def main() -> None:
    for run in anyio.run(with_worker, app, scenario):
        print(run.status.value, run.data.get("lines_reserved"))
    print("\n".join(LEDGER))


if __name__ == "__main__":
    main()
