"""Partitioned history and search attributes on Postgres, measured (issue 13).

Generates (``generate_series``, logged tables: the WAL figures count) one
million finished runs over ten days, ten history rows each -- ten million
history rows, one million a day -- into a scratch schema migrated to today's
layout, then measures:

1. **Removing one day of history**: ``DROP TABLE`` of the day's partition
   beside a ``DELETE`` of another day's rows (one statement, the cheapest row
   delete there is): seconds and WAL bytes (``pg_current_wal_lsn`` before and
   after). Then the whole retention pass for a day each way: legato's pass
   (the day's runs removed in batches without their history, the partition
   dropped) beside the pass as it was before migration 0017 (runs and their
   history rows deleted batch by batch).
3. **Migration 0017** on a schema of the layout before it, holding 100,000
   runs and one million history rows (``--migration-runs``): seconds.
2. **Search by attribute on one million runs**: ``Client.runs(where=...)``'s
   query (``store.list_runs``) for random customers, p50 / p99; the same for an
   idempotency key and a one-hour creation window.

Prints everything and writes benchmarks/results/history.json; the schema is
dropped afterwards unless ``--keep``::

    .venv/bin/python -m benchmarks.history                # 10 M history rows
    .venv/bin/python -m benchmarks.history --runs 100000  # a quicker look

Workload b with the partitioned layout beside the unpartitioned one is the
main harness's: ``python -m benchmarks --systems legato,legato-flat --workloads b``
(``make bench-history`` runs both).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.dashboard_queries import DSN
from legato.clock import ManualClock
from legato.lifecycle.retention import DAY, Retention, RetentionPolicy
from legato.machine.vocabulary import HistoryKind
from legato.store.base import RunQuery
from legato.store.migrations import migrations
from legato.store.postgres import PostgresStore
from legato.store.postgres.partitions import partition_of
from legato.store.retention import Cutoff, Removal

HISTORY_PER_RUN = 10
CUSTOMERS_PER_RUN = 10
"""Runs per customer: a search by customer finds this many."""
LOAD_TIMEOUT = 3600.0
WAL_LSN = "SELECT pg_current_wal_lsn()::text"
WAL_BYTES = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::bigint"

# $1 runs over $2 days from $3 (the first day's midnight); every run finished
# a few minutes after it started, with a customer and an order id to search by.
LOAD_RUNS = """
INSERT INTO runs (id, workflow, workflow_version, status, version, priority, idempotency_key, input,
                  data, machine, current_states, created_at, updated_at, finished_at, sla_met{search})
SELECT md5('run' || g)::uuid, 'order', 1, 'succeeded', 10, 1, 'order:k-' || g,
       jsonb_build_object('customer', jsonb_build_object('id', g % $4), 'order_id', 'o-' || g),
       jsonb_build_object('customer', jsonb_build_object('id', g % $4), 'order_id', 'o-' || g, 'total', g % 1000),
       '{{"tokens": [], "next_seq": 4}}'::jsonb, '{{}}', t.created, t.created + t.took, t.created + t.took, true
       {search_value}
FROM generate_series(0, $1::int - 1) AS g,
     LATERAL (SELECT $3::timestamptz + (g::float8 / $1) * $2::int * interval '1 day' AS created,
                     (1 + (g % 300)) * interval '1 second' AS took) AS t
"""
SEARCH = (", search", ", jsonb_build_object('customer.id', (g % $4)::text, 'order_id', 'o-' || g)")

K = HistoryKind
LOAD_HISTORY = f"""
INSERT INTO history (run_id, version, idx, kind, state, attempt, at, detail{{key}})
SELECT r.id, i, 0,
       CASE WHEN i = 1 THEN '{K.RUN_STARTED}' WHEN i = 10 THEN '{K.RUN_FINISHED}'
            WHEN i % 2 = 0 THEN '{K.STEP_SCHEDULED}' ELSE '{K.STEP_SUCCEEDED}' END,
       CASE WHEN i BETWEEN 2 AND 9 THEN (ARRAY['validate', 'charge', 'ship', 'notify'])[1 + i / 3] END,
       CASE WHEN i BETWEEN 2 AND 9 THEN 1 END,
       r.created_at + (r.finished_at - r.created_at) * (i / 10.0),
       CASE WHEN i % 2 = 1 AND i > 1 THEN jsonb_build_object('duration', (i % 7) / 10.0) ELSE '{{{{}}}}'::jsonb END
       {{key_value}}
FROM runs r, generate_series(1, 10) AS i
"""
PARTITION_KEY = (", run_created_at", ", r.created_at")
"""The layout before migration 0017 has no search column and no partition key: ("", "")."""


def _runs_sql(search: tuple[str, str]) -> str:
    return LOAD_RUNS.format(search=search[0], search_value=search[1])


def _history_sql(key: tuple[str, str]) -> str:
    return LOAD_HISTORY.format(key=key[0], key_value=key[1])


async def timed_sql(conn: Any, sql: str, *args: Any) -> dict[str, Any]:
    lsn = await conn.fetchval(WAL_LSN)
    began = time.perf_counter()
    status = await conn.execute(sql, *args, timeout=LOAD_TIMEOUT)
    seconds = time.perf_counter() - began
    return {"seconds": round(seconds, 3), "wal_bytes": await conn.fetchval(WAL_BYTES, lsn), "status": status}


async def load(store: PostgresStore, runs: int, days: int, first: datetime) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    async with store.pool.acquire() as conn:
        for what, sql, args in (
            ("runs", _runs_sql(SEARCH), (runs, days, first.timestamp(), max(1, runs // CUSTOMERS_PER_RUN))),
            ("history", _history_sql(PARTITION_KEY), ()),
        ):
            found = await timed_sql(conn, sql, *args)
            figures[f"load_{what}_seconds"] = found["seconds"]
            print(f"  {what} loaded in {found['seconds']:.1f} s ({found['wal_bytes'] / 1e6:,.0f} MB of WAL)")
        began = time.perf_counter()
        await conn.execute("VACUUM ANALYZE runs", timeout=LOAD_TIMEOUT)
        await conn.execute("VACUUM ANALYZE history", timeout=LOAD_TIMEOUT)
        figures["vacuum_analyze_seconds"] = round(time.perf_counter() - began, 1)
        sizes = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM history) AS history_rows,"
            " pg_total_relation_size('runs') AS runs_bytes,"
            " (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits"
            "  WHERE inhparent = 'history'::regclass) AS history_bytes"
        )
    assert sizes is not None
    figures |= {k: int(v) for k, v in dict(sizes).items()}
    figures["bytes_per_run"] = round((figures["runs_bytes"] + figures["history_bytes"]) / runs)
    print(
        f"  {figures['history_rows']:,} history rows; runs {figures['runs_bytes'] / 1e6:,.0f} MB,"
        f" history {figures['history_bytes'] / 1e6:,.0f} MB: {figures['bytes_per_run']:,} bytes a run"
    )
    return figures


async def percentiles(call: Callable[[], Awaitable[Any]], count: int) -> dict[str, float]:
    await call()  # warm
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
        "count": count,
    }


async def searches(store: PostgresStore, runs: int, first: datetime, days: int, count: int) -> dict[str, Any]:
    customers = max(1, runs // CUSTOMERS_PER_RUN)
    rng = random.Random(13)

    async def by_customer() -> None:
        found = await store.list_runs(RunQuery(where={"customer.id": str(rng.randrange(customers))}))
        assert len(found) == CUSTOMERS_PER_RUN, len(found)

    async def by_two() -> None:
        n = rng.randrange(runs)
        where = {"customer.id": str(n % customers), "order_id": f"o-{n}"}
        assert len(await store.list_runs(RunQuery(where=where))) == 1

    async def by_key() -> None:
        assert len(await store.list_runs(RunQuery(key=f"order:k-{rng.randrange(runs)}"))) == 1

    async def by_hour() -> None:
        since = first.timestamp() + rng.random() * (days * DAY - 3600)
        assert len(await store.list_runs(RunQuery(since=since, until=since + 3600))) == 50

    found: dict[str, Any] = {
        "customer_id": await percentiles(by_customer, count),
        "customer_id_and_order_id": await percentiles(by_two, count),
        "idempotency_key": await percentiles(by_key, count),
        "one_hour_window": await percentiles(by_hour, count),
    }
    async with store.pool.acquire() as conn:
        plan = await conn.fetch(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT id FROM runs"
            """ WHERE search @> '{"customer.id": "42"}'::jsonb ORDER BY created_at DESC LIMIT 50"""
        )
    found["plan"] = [r[0] for r in plan]
    for name, figures in found.items():
        if name != "plan":
            print(f"  search by {name}: p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms")
    print("   " + "\n   ".join(found["plan"]))
    return found


async def remove_a_day(store: PostgresStore, first: datetime) -> dict[str, Any]:
    """Day 0's history by DROP, day 1's by DELETE; then day 2 by legato's pass, day 3 the old way."""
    days = [partition_of((first + timedelta(days=n)).date()) for n in range(4)]
    found: dict[str, Any] = {}
    async with store.pool.acquire() as conn:
        rows = await conn.fetchval(f"SELECT count(*) FROM {days[0].name}")
        found["drop_partition"] = await timed_sql(conn, f"DROP TABLE {days[0].name}") | {"rows": rows}
        found["delete_rows"] = await timed_sql(
            conn,
            "DELETE FROM history WHERE run_created_at >= $1 AND run_created_at < $2",
            days[1].since,
            days[1].until,
        )
        lsn = await conn.fetchval(WAL_LSN)
    # legato's pass on day 2: its runs in batches of 500 (without their history),
    # then the partition dropped. Days 0 and 1 (no history left) go first, with their runs.
    # Runs take up to 300 s: a cutoff 300 s past the day's end has every run of it.
    clock = ManualClock(days[2].until + 600)
    for n in (0, 1):
        async with store.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM runs WHERE created_at >= $1 AND created_at < $2", days[n].since, days[n].until
            )
    retention = Retention(store, RetentionPolicy(default=300), clock, holder="bench")
    began = time.perf_counter()
    report = await retention.run()
    assert report is not None
    async with store.pool.acquire() as conn:
        found["legato_pass"] = {
            "seconds": round(time.perf_counter() - began, 3),
            "wal_bytes": await conn.fetchval(WAL_BYTES, lsn),
            **report.removed.by_table(),
        }
        lsn = await conn.fetchval(WAL_LSN)
    # The pass before migration 0017: batches of 500 runs, each with its history rows.
    cutoff = Cutoff(None, days[3].until + 300, DAY)
    removed_runs = removed_history = 0
    began = time.perf_counter()
    while expired := await store.expired_runs([cutoff], 500):
        removed = await store.remove_runs([Removal(e.run_id, cutoff.finished_before, 0) for e in expired])
        removed_runs += removed.runs
        removed_history += removed.history
    async with store.pool.acquire() as conn:
        found["rows_pass"] = {
            "seconds": round(time.perf_counter() - began, 3),
            "wal_bytes": await conn.fetchval(WAL_BYTES, lsn),
            "runs": removed_runs,
            "history": removed_history,
        }
    for name, figures in found.items():
        print(f"  {name}: {figures}")
    return found


async def migration(runs: int, days: int, first: datetime) -> dict[str, Any]:
    """Migration 0017 timed on a schema migrated up to 0016 and filled."""
    schema = f"bench_history_migration_{os.getpid()}"
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"; SET search_path = "{schema}"')
        for step in migrations("postgres"):
            if step.number < 17:
                await conn.execute(step.sql)
        old = ("", "")
        await conn.execute(
            _runs_sql(old), runs, days, first, max(1, runs // CUSTOMERS_PER_RUN), timeout=LOAD_TIMEOUT
        )
        await conn.execute(_history_sql(old), timeout=LOAD_TIMEOUT)
        await conn.execute("VACUUM ANALYZE", timeout=LOAD_TIMEOUT)
        rows = await conn.fetchval("SELECT count(*) FROM history")
        [step] = [m for m in migrations("postgres") if m.number == 17]
        found = await timed_sql(conn, step.sql)
        found |= {"history_rows": rows, "seconds_per_million_rows": round(found["seconds"] * 1e6 / rows, 1)}
        del found["status"]
        print(f"  migration 0017: {found}")
        return found
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE', timeout=LOAD_TIMEOUT)
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs; ten history rows each")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--migration-runs", type=int, default=100_000, help="runs to migrate; 0: skip")
    parser.add_argument("--searches", type=int, default=500, help="queries of each kind")
    parser.add_argument("--schema", default=f"bench_history_{os.getpid()}")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=args.days)
    store = PostgresStore(DSN, args.schema, min_size=1, max_size=2)
    await store.open()
    try:
        await store.migrate()
        await store.prepare_partitions(first.timestamp() + DAY, args.days)
        print(
            f"loading {args.runs:,} runs, {args.runs * HISTORY_PER_RUN:,} history rows into {args.schema} ..."
        )
        found: dict[str, Any] = {"runs": args.runs, "days": args.days, "load_average": os.getloadavg()}
        found |= await load(store, args.runs, args.days, first)
        found["search"] = await searches(store, args.runs, first, args.days, args.searches)
        found["remove_a_day"] = await remove_a_day(store, first)
        if args.migration_runs:
            found["migration_0017"] = await migration(args.migration_runs, args.days, first)
        found["load_average_after"] = os.getloadavg()
        out = Path(__file__).parent / "results" / "history.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(found, indent=2))
        print(f"written to {out}")
    finally:
        if not args.keep:
            async with store.pool.acquire() as conn:
                await conn.execute(f'DROP SCHEMA "{args.schema}" CASCADE', timeout=LOAD_TIMEOUT)
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
