"""The DBOS side: ``python -m benchmarks.peers.dbos_app`` is one worker process.

DBOS keeps everything in Postgres (its own database, ``legato_bench_dbos``):
a run is a workflow, enqueued on a DBOS queue; every step's completion is
checkpointed before the workflow goes on. Workflows and steps are async, and
the fan-out starts its four steps as tasks in a fixed order and gathers them,
as DBOS's docs show. Completion times come from DBOS's own ``workflow_status``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from dbos import DBOS, DBOSConfig

from benchmarks.settings import DATABASE_URL

DATABASE = "legato_bench_dbos"
SYSTEM_DATABASE_URL = DATABASE_URL.rsplit("/", 1)[0] + "/" + DATABASE
QUEUE = "bench_dbos"
POLLING_INTERVAL = 0.01
"""DBOS's default of 1 s would cap a worker at ``worker_concurrency`` workflows a second."""
WORKER_CONCURRENCY = 64


@DBOS.step(name="noop")
async def noop() -> None:
    return None


@DBOS.workflow(name="single")
async def single() -> None:
    await noop()


@DBOS.workflow(name="chain3")
async def chain3() -> None:
    await noop()
    await noop()
    await noop()


@DBOS.workflow(name="fanout4")
async def fanout4() -> None:
    branches = [asyncio.create_task(noop()) for _ in range(4)]
    await asyncio.gather(*branches)
    await noop()


@DBOS.workflow(name="map100")
async def map100() -> None:
    # Every item a step of its own, started at once and gathered: DBOS's fan-out.
    await asyncio.gather(*(asyncio.create_task(noop()) for _ in range(100)))


def config(pool: int) -> DBOSConfig:
    return {
        "name": "legato-bench",
        "system_database_url": SYSTEM_DATABASE_URL,
        "sys_db_pool_size": pool,
        "log_level": "WARNING",
        # One executor per process: DBOS counts worker_concurrency per executor
        # and recovers an executor's unfinished workflows when it starts.
        "executor_id": f"bench-{os.getpid()}",
    }


async def serve(migrate_only: bool = False) -> None:
    """Serve the queue until SIGTERM; with ``migrate_only``, create the schema and the queue, then stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    DBOS(config=config(int(os.environ.get("BENCH_POOL", "8"))))
    DBOS.launch()
    await DBOS.register_queue_async(
        QUEUE, worker_concurrency=WORKER_CONCURRENCY, polling_interval_sec=POLLING_INTERVAL
    )
    if not migrate_only:
        await stop.wait()
    DBOS.destroy(workflow_completion_timeout_sec=5)


if __name__ == "__main__":
    asyncio.run(serve(migrate_only="--migrate" in sys.argv))
