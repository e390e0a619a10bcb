"""From recorded timestamps to the figures in the table.

Every figure comes from timestamps that the systems themselves wrote to
Postgres (a run's creation or publish time, and its finish time), never from
the harness's own stopwatch, so a loaded machine slows the runs but does not
skew how they are measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.workloads import Mode, Workload


@dataclass(frozen=True)
class Timing:
    """One finished run: when it was created (enqueued or published) and when it finished."""

    created: float
    finished: float


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class CellResult:
    """One system on one workload."""

    system: str
    workload: str
    title: str
    runs: int
    steps: int
    processes: int
    mode: str
    finished: int = 0
    failed: int = 0
    seconds: float = 0.0
    """The drain (first consumption to last finish), or the paced window (first publish to last finish)."""
    runs_per_s: float = 0.0
    steps_per_s: float = 0.0
    latency: Latency | None = None
    peak_rss_mb: float = 0.0
    cpu_us_per_step: float = 0.0
    """User + system time of the worker processes from their first run to the end,
    per step: unlike throughput, it hardly moves with the machine's noise."""
    enqueue_seconds: float = 0.0
    startup_seconds: float = 0.0
    """From starting the worker processes to their taking the first run (drain)."""
    wall_seconds: float = 0.0
    """The whole cell, set-up and shutdown included."""
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation; ``values`` need not be sorted."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_of(timings: Sequence[Timing]) -> Latency:
    spans = [max(0.0, t.finished - t.created) * 1000.0 for t in timings]
    return Latency(percentile(spans, 50), percentile(spans, 95), percentile(spans, 99), max(spans))


def summarise(
    result: CellResult,
    workload: Workload,
    timings: Sequence[Timing],
    failed: int,
    started: float,
) -> CellResult:
    """Fill in throughput and latency.

    ``started`` is when the workers began consuming (drain) or when the first
    run was published (paced); throughput is runs over the time from then to
    the last finish.
    """
    result.finished = len(timings)
    result.failed = failed
    if not timings:
        result.error = result.error or "no run finished"
        return result
    last = max(t.finished for t in timings)
    result.seconds = max(last - started, 1e-9)
    result.runs_per_s = len(timings) / result.seconds
    result.steps_per_s = result.runs_per_s * workload.shape.steps
    result.latency = latency_of(timings)
    if len(timings) + failed < workload.runs and result.error is None:
        result.error = f"only {len(timings)} of {workload.runs} runs finished"
    if workload.mode is Mode.DRAIN:
        result.notes.append("latency in a drain is mostly time spent queued behind the backlog")
    return result
