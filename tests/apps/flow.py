"""Workflows of the flow-control tests, run by worker subprocesses.

Handlers return the worker's pid, so a test can tell the processes apart in
the history. ``hold`` also writes its own start and finish to a table, so a
step cut short by SIGKILL still shows when it started.
"""

from __future__ import annotations

import os
import time
from typing import Any

import anyio
import asyncpg

from legato import App, ConcurrencyLimit, RateLimit, StepContext, Task, Workflow

HOLD = float(os.environ.get("FLOW_HOLD", "0.4"))
LEASE = float(os.environ.get("FLOW_LEASE", "3"))

INTERVALS_TABLE = """
CREATE TABLE flow_intervals (
    run_id   text             NOT NULL,
    key      text             NOT NULL,
    pid      integer          NOT NULL,
    started  double precision NOT NULL,
    finished double precision
)
"""

_pool: asyncpg.Pool | None = None


async def _log() -> asyncpg.Pool:
    global _pool
    if _pool is None:
        _pool = await asyncpg.create_pool(
            os.environ["LEGATO_DATABASE_URL"],
            min_size=1,
            max_size=2,
            server_settings={"search_path": os.environ["LEGATO_DATABASE_SCHEMA"]},
        )
    return _pool


async def stamp(ctx: StepContext) -> dict[str, Any]:
    return {"pid": os.getpid()}


async def hold(ctx: StepContext) -> dict[str, Any]:
    log = await _log()
    pid = os.getpid()
    await log.execute(
        "INSERT INTO flow_intervals (run_id, key, pid, started) VALUES ($1, $2, $3, $4)",
        ctx.run_id,
        ctx.data["key"],
        pid,
        time.time(),
    )
    await anyio.sleep(HOLD)
    await log.execute(
        "UPDATE flow_intervals SET finished = $1 WHERE run_id = $2 AND pid = $3 AND finished IS NULL",
        time.time(),
        ctx.run_id,
        pid,
    )
    return {"pid": pid}


app = App(
    [
        Workflow("paced", start="a", states={"a": Task(stamp, rate_limit="shared")}),
        Workflow("local", start="a", states={"a": Task(stamp, rate_limit="each")}),
        Workflow(
            "keyed",
            start="a",
            states={"a": Task(hold, concurrency_limit="per_key", concurrency_key="key")},
        ),
        Workflow("bulk", start="a", states={"a": Task(stamp)}),
    ],
    limits=[
        RateLimit("shared", 20, burst=10, scope="global"),
        RateLimit("each", 10, burst=5, scope="process"),
        ConcurrencyLimit("per_key", 2, scope="global", lease=LEASE),
    ],
)
