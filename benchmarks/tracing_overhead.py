"""What tracing and metrics cost per step, and what they cost when off.

Runs N three-step runs through an in-process worker (embedded SQLite store,
in-process broker) three times -- telemetry off, metrics on, tracing on (spans
batched to an exporter that drops them) -- and reports steps per second; then
times the engine's per-transition ``message_headers`` hook with tracing on
(with telemetry off the engine does not call it)::

    .venv/bin/python benchmarks/tracing_overhead.py --runs 300
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import timeit
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from legato import App, StepContext, Task, Workflow
from legato.broker.base import Topology
from legato.broker.memory import MemoryBroker
from legato.client import Client
from legato.machine.run import Run, RunStatus
from legato.observe import MessageHeadersInput, Observer
from legato.store.sqlite import SqliteStore
from legato.telemetry.metrics import Metrics
from legato.telemetry.tracing import Tracing
from legato.worker.runtime import Worker, WorkerSettings


class Drop(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


async def step(ctx: StepContext) -> dict[str, int]:
    return {ctx.state: ctx.attempt}


APP = App(
    [
        Workflow(
            "bench", start="a", states={"a": Task(step, next="b"), "b": Task(step, next="c"), "c": Task(step)}
        )
    ]
)


async def measure(runs: int, observer: Observer | None, middleware: list[Any]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        store, broker = SqliteStore(Path(folder) / "bench.db"), MemoryBroker(Topology("bench"))
        worker = Worker(
            APP, store, broker, WorkerSettings(concurrency=32), observer=observer, middleware=middleware
        )
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run)
            await worker.started.wait()
            client = Client(store, broker, APP)
            began = time.perf_counter()
            for _ in range(runs):
                await client.start("bench", {})
            while len(await client.runs(RunStatus.SUCCEEDED, limit=runs)) < runs:
                await anyio.sleep(0.005)
            elapsed = time.perf_counter() - began
            worker.stop()
    return runs * 3 / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    metrics = Metrics()
    drop = Drop()
    tracing = Tracing([BatchSpanProcessor(drop)])
    cases: dict[str, tuple[Any, list[Any]]] = {
        "telemetry off": (None, []),
        "metrics on": (metrics.observer(), [metrics.middleware()]),
        "tracing on": (tracing.observer(), [tracing.middleware()]),
    }
    print(f"{args.runs} runs x 3 steps, embedded store, in-process broker (best of 3, interleaved)")
    await measure(50, None, [])  # warm up imports and the file system
    best = dict.fromkeys(cases, 0.0)
    for _ in range(3):
        for name, (observer, middleware) in cases.items():
            best[name] = max(best[name], await measure(args.runs, observer, middleware))
    for name, rate in best.items():
        print(f"  {name:14} {rate:8.0f} steps/s")
    tracing.shutdown()
    print(f"  ({drop.count} spans exported with tracing on)")

    run = Run("0f8fad5b-d9cb-469f-a165-70867728950e", "bench", 1, RunStatus.RUNNING, 1, {}, {}, 0.0, 0.0)
    on = tracing.observer()
    assert not Observer().overrides(Observer.message_headers)  # off: the engine does not call it
    n = 200_000
    per_call = timeit.timeit(lambda: on.message_headers(MessageHeadersInput(run)), number=n) / n * 1e9
    print(f"message_headers per transition: off not called, tracing on {per_call:.0f} ns")


if __name__ == "__main__":
    asyncio.run(main())
