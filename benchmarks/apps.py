"""The legato app the benchmark workers run: ``legato worker benchmarks.apps:app``.

Every step is a no-op, so the figures measure the runtime, not the work.
"""

from __future__ import annotations

from legato import App, Branch, Map, Parallel, StepContext, Task, Workflow


async def noop(ctx: StepContext) -> None:
    return None


single = Workflow(
    "single",
    triggers=("bench.single",),
    start="step",
    states={"step": Task(noop)},
)

chain3 = Workflow(
    "chain3",
    triggers=("bench.chain3",),
    start="one",
    states={"one": Task(noop, next="two"), "two": Task(noop, next="three"), "three": Task(noop)},
)

fanout4 = Workflow(
    "fanout4",
    triggers=("bench.fanout4",),
    start="fan",
    states={
        "fan": Parallel([Branch(f"b{i}", {f"b{i}": Task(noop)}) for i in range(4)], next="join"),
        "join": Task(noop),
    },
)


async def grow(ctx: StepContext) -> dict[str, str]:
    return {f"added_by_{ctx.state}": "y" * 1024}


data64k = Workflow(
    "data64k",
    triggers=("bench.data64k",),
    start="one",
    states={"one": Task(grow, next="two"), "two": Task(grow, next="three"), "three": Task(grow)},
)

map100 = Workflow(
    "map100",
    triggers=("bench.map100",),
    start="each",
    states={"each": Map("items", Branch("item", {"item": Task(noop)}), max_concurrency=100)},
)

app = App([single, chain3, fanout4, data64k, map100])
