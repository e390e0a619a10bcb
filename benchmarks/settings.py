"""Where the benchmarks connect, and how big each workload is."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")

PEERS_SCHEMA = "bench_peers"
"""Completion records of the peers that keep no run table of their own (Celery, Dramatiq)."""

DB_CONNECTIONS_PER_SYSTEM = 24
"""Postgres (max_connections=100) is shared with other work on this machine:
every system gets the same budget, split over its worker processes."""


def db_pool(processes: int) -> int:
    """Connections (and worker threads, for the threaded peers) per worker process."""
    return max(2, min(8, DB_CONNECTIONS_PER_SYSTEM // processes))


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of every worker process the harness starts."""
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": DATABASE_URL,
        "BENCH_BROKER_URL": BROKER_URL,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    env.update(extra)
    return env


@dataclass(frozen=True)
class Scale:
    """Sizes of the workloads; the full scale is the one the issue specifies."""

    single_runs: int
    chain_runs: int
    fanout_runs: int
    latency_rate: float
    latency_seconds: float
    scale_runs: int
    scale_processes: tuple[int, ...]
    cell_timeout: float
    map_runs: int


FULL = Scale(
    single_runs=20_000,
    chain_runs=2_000,
    fanout_runs=1_000,
    latency_rate=20.0,
    latency_seconds=30.0,
    scale_runs=2_000,
    scale_processes=(1, 2, 4),
    cell_timeout=300.0,
    map_runs=100,
)

QUICK = Scale(
    single_runs=1_000,
    chain_runs=300,
    fanout_runs=150,
    latency_rate=20.0,
    latency_seconds=3.0,
    scale_runs=300,
    # 2 processes run the same code path as 4; the full run measures all three.
    scale_processes=(1, 4),
    cell_timeout=60.0,
    map_runs=10,
)
