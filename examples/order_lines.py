"""An order whose lines are each reserved through a map state, two at a time.

Every line is reserved and priced by its own item steps; the results land in
the run's data as one list, in line order, and the order is charged. When a
line cannot be reserved (the warehouse has no stock), the map fails, and the
lines already reserved are released, the most recently reserved first.

    python -m examples.order_lines
"""

from __future__ import annotations

from typing import Any

import anyio

from examples._run import with_worker
from legato import (
    App,
    Branch,
    Client,
    Map,
    NonRetryableError,
    RetryPolicy,
    Run,
    StepContext,
    Task,
    Workflow,
)

STOCK = {"apple": 10, "pear": 5, "plum": 0}
LEDGER: list[str] = []


async def accept(ctx: StepContext) -> dict[str, Any]:
    return {"accepted": True}


async def reserve(ctx: StepContext) -> dict[str, Any]:
    line = ctx.data["item"]
    if STOCK.get(line["sku"], 0) < line["qty"]:
        raise NonRetryableError(f"no stock for {line['sku']}")
    LEDGER.append(f"reserve {line['sku']}")
    return {"reserved": line["qty"]}


async def release(ctx: StepContext) -> None:
    LEDGER.append(f"release {ctx.data['item']['sku']}")


async def price(ctx: StepContext) -> dict[str, Any]:
    line = ctx.data["item"]
    return {"sku": line["sku"], "amount": ctx.data["reserved"] * 3}


async def charge(ctx: StepContext) -> dict[str, Any]:
    total = sum(line["amount"] for line in ctx.data["lines_reserved"])
    LEDGER.append(f"charge {total}")
    return {"charged": total}


order = Workflow(
    "order",
    start="accept",
    retry=RetryPolicy(max_attempts=2, initial_delay=0.05),
    states={
        "accept": Task(accept, next="lines"),
        "lines": Map(
            "order.lines",
            Branch(
                "reserve",
                {
                    "reserve": Task(reserve, next="price", compensate=release),
                    "price": Task(price),
                },
            ),
            next="charge",
            max_concurrency=2,
            output_key="lines_reserved",
        ),
        "charge": Task(charge),
    },
)

app = App([order])


async def scenario(client: Client) -> list[Run]:
    fruit = [{"sku": "apple", "qty": 2}, {"sku": "pear", "qty": 1}, {"sku": "apple", "qty": 1}]
    good = await client.start("order", {"order": {"lines": fruit}})
    done = await client.wait(good.id, timeout=30)
    bad = await client.start("order", {"order": {"lines": [*fruit, {"sku": "plum", "qty": 1}]}})
    return [done, await client.wait(bad.id, timeout=30)]


def main() -> None:
    for run in anyio.run(with_worker, app, scenario):
        print(run.status.value, run.data.get("lines_reserved"))
    print("\n".join(LEDGER))


if __name__ == "__main__":
    main()
