"""``python -m benchmarks.publish SYSTEM SHAPE RUNS``: publish runs from a process of
their own, as fast as the system's client takes them (workload g).

A separate process, so that publishing competes with the worker for the
machine as it does in production, not for the worker's event loop.
"""

from __future__ import annotations

import sys

import anyio

from benchmarks.__main__ import build
from benchmarks.workloads import Shape

CONCURRENCY = 16


async def publish(system_name: str, shape: Shape, runs: int) -> None:
    system = build(system_name)
    limiter = anyio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with limiter:
            await system.publish(shape)

    try:
        async with anyio.create_task_group() as group:
            for _ in range(runs):
                group.start_soon(one)
    finally:
        await system.close()


def main() -> None:
    name, shape, runs = sys.argv[1:4]
    anyio.run(publish, name, Shape(shape), int(runs))


if __name__ == "__main__":
    main()
