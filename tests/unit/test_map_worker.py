"""A map on a worker (embedded default): an item's limit key comes from the item."""

from __future__ import annotations

import time
from typing import Any

import anyio
from examples._run import with_worker

from legato import App, Branch, Client, ConcurrencyLimit, Map, Run, RunStatus, StepContext, Task, Workflow

SPANS: list[tuple[str, float, float]] = []


async def call_api(ctx: StepContext) -> dict[str, Any]:
    started = time.monotonic()
    await anyio.sleep(0.1)
    SPANS.append((ctx.data["item"]["customer"], started, time.monotonic()))
    return {"called": ctx.data["index"]}


PER_CUSTOMER = Workflow(
    "per_customer",
    start="each",
    states={
        "each": Map(
            "calls",
            Branch(
                "call",
                {"call": Task(call_api, concurrency_limit="one_each", concurrency_key="item.customer")},
            ),
            max_concurrency=8,
        )
    },
)
APP = App([PER_CUSTOMER], limits=[ConcurrencyLimit("one_each", 1, scope="process")])


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


async def scenario(client: Client) -> Run:
    calls = [{"customer": customer} for customer in "abab" * 2]
    started = await client.start("per_customer", {"calls": calls})
    return await client.wait(started.id, timeout=30)


async def test_an_items_concurrency_key_comes_from_the_item() -> None:
    SPANS.clear()
    run = await with_worker(APP, scenario)
    assert run.status is RunStatus.SUCCEEDED
    assert run.data["results"] == [{"called": i} for i in range(8)]
    for customer in "ab":
        assert most_at_once([(s, e) for c, s, e in SPANS if c == customer]) == 1
    # One bucket per customer, not one for all: the two customers ran side by side.
    assert most_at_once([(s, e) for _, s, e in SPANS]) == 2
