"""What does a retention pass cost on Postgres? Seconds and WAL to remove a day of runs.

Loads synthetic runs (30 days of them, 6 history lines each: the loader of
``dashboard_queries.py``, ``generate_series`` SQL) into a scratch schema, then
runs retention with a 29-day period: the oldest day's finished runs go, with
their history, outbox rows and dead letters, in batches of ``--batch`` runs per
transaction (docs/retention.md). Prints and writes to
benchmarks/results/retention.json: rows removed, seconds, WAL bytes written,
and the time of ``legato retention status``::

    .venv/bin/python benchmarks/retention.py                 # 1 M runs, ~6 M history rows
    .venv/bin/python benchmarks/retention.py --runs 100000 --batch 2000

The schema is dropped afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from benchmarks.dashboard_queries import DSN, LOAD_HISTORY, LOAD_RUNS
from legato.clock import SystemClock
from legato.lifecycle.retention import DAY, Retention, RetentionPolicy
from legato.store.postgres import PostgresStore

WAL_LSN = "SELECT pg_current_wal_lsn()::text"
LOAD_TIMEOUT = 3600.0
"""Seconds the loading statements may take (the store's own bound is a minute)."""
WAL_BYTES = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::bigint"


async def load(store: PostgresStore, runs: int, now: float) -> None:
    async with store.pool.acquire() as conn:
        for what, sql, args in (("runs", LOAD_RUNS, (runs, now)), ("history", LOAD_HISTORY, ())):
            began = time.perf_counter()
            await conn.execute(sql, *args, timeout=LOAD_TIMEOUT)
            print(f"  {what} loaded in {time.perf_counter() - began:.1f} s")
        await conn.execute("VACUUM ANALYZE runs", timeout=LOAD_TIMEOUT)
        await conn.execute("VACUUM ANALYZE history", timeout=LOAD_TIMEOUT)


async def measure(store: PostgresStore, batch: int) -> dict[str, float | int]:
    retention = Retention(
        store, RetentionPolicy(default=29 * DAY), SystemClock(), holder="bench", batch=batch
    )
    began = time.perf_counter()
    status = await retention.status()
    status_seconds = time.perf_counter() - began
    async with store.pool.acquire() as conn:
        lsn = await conn.fetchval(WAL_LSN)
    report = await retention.run()
    assert report is not None
    async with store.pool.acquire() as conn:
        wal = await conn.fetchval(WAL_BYTES, lsn)
        left = await conn.fetchval("SELECT count(*) FROM history")
    return {
        "expired_runs": sum(status.expired.values()),
        "status_seconds": round(status_seconds, 3),
        **report.removed.by_table(),
        "seconds": round(report.seconds, 3),
        "wal_bytes": wal,
        "history_rows_left": left,
        "batch": batch,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--schema", default=f"bench_retention_{os.getpid()}")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    store = PostgresStore(DSN, args.schema, min_size=1, max_size=2)
    await store.open()
    try:
        await store.migrate()
        print(f"loading {args.runs:,} runs into schema {args.schema} ...")
        await load(store, args.runs, time.time())
        found = await measure(store, args.batch)
        found["runs_loaded"] = args.runs
        for name, value in found.items():
            print(f"  {name:>20}: {value:,}")
        out = Path(__file__).parent / "results" / "retention.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(found, indent=2))
    finally:
        if not args.keep:
            async with store.pool.acquire() as conn:
                await conn.execute(f'DROP SCHEMA "{args.schema}" CASCADE')
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
