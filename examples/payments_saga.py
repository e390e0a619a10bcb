"""A trip booking saga: flight, hotel and car; when the car cannot be booked, the hotel
and the flight are cancelled, in that order. A flaky hotel API asks for a retry.

    python -m examples.payments_saga
"""

from __future__ import annotations

from typing import Any

import anyio

from examples._run import with_worker
from legato import (
    App,
    Client,
    NonRetryableError,
    RetryAfter,
    RetryPolicy,
    Run,
    StepContext,
    Task,
    Workflow,
)

LEDGER: list[str] = []


async def book_flight(ctx: StepContext) -> dict[str, Any]:
    LEDGER.append(f"book flight {ctx.data['trip']}")
    return {"flight": "LH-100"}


async def cancel_flight(ctx: StepContext) -> None:
    LEDGER.append(f"cancel flight {ctx.data['trip']}")


async def book_hotel(ctx: StepContext) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise RetryAfter(0.05, "hotel API rate-limited us")
    LEDGER.append(f"book hotel {ctx.data['trip']}")
    return {"hotel": "H-7"}


async def cancel_hotel(ctx: StepContext) -> None:
    LEDGER.append(f"cancel hotel {ctx.data['trip']}")


async def book_car(ctx: StepContext) -> dict[str, Any]:
    if ctx.data.get("city") == "Venice":
        raise NonRetryableError("no cars in Venice")
    LEDGER.append(f"book car {ctx.data['trip']}")
    return {"car": "C-3"}


trip = Workflow(
    "trip",
    start="flight",
    retry=RetryPolicy(max_attempts=3, initial_delay=0.05),
    states={
        "flight": Task(book_flight, next="hotel", compensate=cancel_flight),
        "hotel": Task(book_hotel, next="car", compensate=cancel_hotel),
        "car": Task(book_car),
    },
)

app = App([trip])


async def scenario(client: Client) -> list[Run]:
    runs = [
        await client.start("trip", {"trip": "T1", "city": "Rome"}),
        await client.start("trip", {"trip": "T2", "city": "Venice"}),
    ]
    return [await client.wait(r.id, timeout=30) for r in runs]


def main() -> None:
    for run in anyio.run(with_worker, app, scenario):
        print(run.input["trip"], run.status.value)
    print("\n".join(LEDGER))


if __name__ == "__main__":
    main()
