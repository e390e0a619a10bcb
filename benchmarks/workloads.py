"""The workloads: the same shapes of run for every system."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from benchmarks.settings import Scale


class Shape(enum.Enum):
    """What one run does. Every step is a no-op: the benchmark measures the runtime."""

    SINGLE = "single"
    """One step."""
    CHAIN = "chain3"
    """Three steps, one after another."""
    FANOUT = "fanout4"
    """Four steps in parallel, then a join step."""
    DATA = "data64k"
    """Three steps, one after another, over a 64 KB document; each step adds 1 KB to it
    (what a step costs as a run's data grows: legato only, the peers keep no run data)."""
    MAP = "map100"
    """A fan-out over the 100 items of the run's input, joined: the peers' own primitive
    (a legato map, a Celery chord, a Dramatiq group, DBOS steps gathered)."""

    @property
    def steps(self) -> int:
        return {Shape.SINGLE: 1, Shape.CHAIN: 3, Shape.FANOUT: 5, Shape.DATA: 3, Shape.MAP: MAP_ITEMS}[self]

    @property
    def input(self) -> dict[str, object]:
        """What a run of this shape starts with."""
        if self is Shape.MAP:
            return {"items": list(range(MAP_ITEMS))}
        if self is Shape.DATA:
            return {"doc": DOCUMENT}
        return {}


MAP_ITEMS = 100
DOCUMENT = {f"field{i}": "x" * 1000 for i in range(64)}
"""About 64 KB of JSON."""


class Mode(enum.Enum):
    DRAIN = "drain"
    """Enqueue every run with no worker running, then start the workers and time the drain."""
    PACED = "paced"
    """Workers running and warm; runs published at a steady rate, each timed from its publish."""
    STREAM = "stream"
    """Workers running and warm; another process publishes every run as fast as it can,
    each timed from its publish."""


@dataclass(frozen=True)
class Workload:
    key: str
    """``a``..``e``, as in the issue; scale-out cells are ``e1``, ``e2``, ``e4``."""
    title: str
    shape: Shape
    mode: Mode
    runs: int
    processes: int = 1
    rate: float = 0.0
    """Runs per second (paced mode)."""

    @property
    def steps(self) -> int:
        return self.runs * self.shape.steps


def workloads(scale: Scale) -> list[Workload]:
    paced_runs = round(scale.latency_rate * scale.latency_seconds)
    found = [
        Workload("a", f"{scale.single_runs} single-step runs", Shape.SINGLE, Mode.DRAIN, scale.single_runs),
        Workload(
            "b", f"{scale.chain_runs} runs of a 3-step chain", Shape.CHAIN, Mode.DRAIN, scale.chain_runs
        ),
        Workload(
            "c",
            f"{scale.fanout_runs} runs of a 4-way fan-out + join",
            Shape.FANOUT,
            Mode.DRAIN,
            scale.fanout_runs,
        ),
        Workload(
            "d",
            f"3-step chain at {scale.latency_rate:g} runs/s for {scale.latency_seconds:g} s",
            Shape.CHAIN,
            Mode.PACED,
            paced_runs,
            rate=scale.latency_rate,
        ),
    ]
    found.append(
        Workload(
            "f",
            f"{scale.chain_runs} runs of a 3-step chain over 64 KB of data, +1 KB a step",
            Shape.DATA,
            Mode.DRAIN,
            scale.chain_runs,
        )
    )
    found.append(
        Workload(
            "m",
            f"{scale.map_runs} runs of a map over {MAP_ITEMS} items",
            Shape.MAP,
            Mode.DRAIN,
            scale.map_runs,
        )
    )
    found.append(
        Workload(
            "g",
            f"{scale.single_runs} single-step runs published by another process meanwhile",
            Shape.SINGLE,
            Mode.STREAM,
            scale.single_runs,
        )
    )
    for processes in scale.scale_processes:
        found.append(
            Workload(
                f"e{processes}",
                f"{scale.scale_runs} 3-step chains, {processes} worker process{'es' if processes > 1 else ''}",
                Shape.CHAIN,
                Mode.DRAIN,
                scale.scale_runs,
                processes=processes,
            )
        )
    return found
