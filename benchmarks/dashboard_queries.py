"""How fast are the dashboard's queries with 1 M runs in the table?

Loads synthetic runs (30 days of them, four workflows, realistic statuses) and
their history (six lines per run) into a scratch Postgres schema with
``generate_series``, then times every query the dashboard runs, warm, over
ranges from an hour to the whole month::

    .venv/bin/python benchmarks/dashboard_queries.py              # 1 M runs, ~6 M history rows
    .venv/bin/python benchmarks/dashboard_queries.py --runs 100000 --explain

The schema is dropped afterwards unless ``--keep``. Results also go to
benchmarks/results/dashboard_queries.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from legato.http.dashboard.service import Dashboard
from legato.machine.run import RunStatus
from legato.machine.vocabulary import HistoryKind
from legato.store.base import RunQuery
from legato.store.postgres import PostgresStore
from legato.store.postgres.insights import (
    ACTIVE_COUNTS,
    ERROR_PATTERNS,
    STEP_STATS,
    THROUGHPUT,
    PostgresInsights,
)

DSN = os.environ.get("LEGATO_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
DAY = 86400.0

# Status by g % 200: 90 % succeeded, 4 % failed, 2 % compensated, 1 % cancelled,
# 2 % running, 0.5 % suspended, 0.5 % compensating.
LOAD_RUNS = """
INSERT INTO runs (id, workflow, workflow_version, status, version, priority, input, data, machine,
                  current_states, created_at, updated_at, finished_at, sla_met, deadline)
SELECT md5('run' || g)::uuid,
       (ARRAY['order', 'refund', 'signup', 'invoice'])[1 + g % 4],
       1,
       s.status,
       6,
       1,
       jsonb_build_object('n', g),
       jsonb_build_object('n', g, 'total', g % 1000),
       '{"tokens": [], "next_seq": 4}'::jsonb,
       CASE WHEN s.status IN ('running', 'suspended', 'compensating') THEN ARRAY['charge'] ELSE '{}' END,
       t.created,
       t.created + t.took,
       CASE WHEN s.status IN ('running', 'suspended', 'compensating') THEN NULL ELSE t.created + t.took END,
       CASE WHEN s.status IN ('running', 'suspended', 'compensating') THEN NULL ELSE random() < 0.95 END,
       t.created + interval '10 minutes'
FROM generate_series(1, $1::int) AS g,
     LATERAL (SELECT CASE
         WHEN g % 200 < 180 THEN 'succeeded' WHEN g % 200 < 188 THEN 'failed'
         WHEN g % 200 < 192 THEN 'compensated' WHEN g % 200 < 194 THEN 'cancelled'
         WHEN g % 200 < 198 THEN 'running' WHEN g % 200 < 199 THEN 'suspended'
         ELSE 'compensating' END AS status) AS s,
     LATERAL (SELECT $2::timestamptz - interval '30 days' + (g::float8 / $1) * interval '30 days' AS created,
                     (0.5 + random() * 300) * interval '1 second' AS took) AS t
"""

# Six lines per run: started, three step outcomes (the second fails in 5 % of
# runs, with one of three error types), a scheduled step, finished.
K = HistoryKind
LOAD_HISTORY = f"""
INSERT INTO history (run_id, version, idx, kind, state, attempt, at, detail, run_created_at)
SELECT r.id, i, 0,
       CASE i WHEN 1 THEN '{K.RUN_STARTED}'
              WHEN 2 THEN '{K.STEP_SUCCEEDED}'
              WHEN 3 THEN CASE WHEN hashtext(r.id::text) % 20 = 0 THEN '{K.STEP_FAILED}' ELSE '{K.STEP_SUCCEEDED}' END
              WHEN 4 THEN '{K.STEP_SUCCEEDED}'
              WHEN 5 THEN '{K.STEP_SCHEDULED}'
              ELSE '{K.RUN_FINISHED}' END,
       (ARRAY[NULL, 'validate', 'charge', 'ship', 'notify', NULL])[i],
       CASE WHEN i BETWEEN 2 AND 5 THEN 1 END,
       r.created_at + (r.updated_at - r.created_at) * (i / 6.0),
       CASE WHEN i = 3 AND hashtext(r.id::text) % 20 = 0 THEN
                jsonb_build_object('duration', random() * 2, 'error', jsonb_build_object(
                    'type', (ARRAY['ConnectionError', 'TimeoutError', 'PaymentDeclined'])[1 + abs(hashtext(r.id::text)) % 3],
                    'message', 'upstream said no to ' || r.id))
            WHEN i BETWEEN 2 AND 4 THEN jsonb_build_object('duration', random() * random() * 3)
            ELSE '{{}}'::jsonb END,
       r.created_at
FROM runs r, generate_series(1, 6) AS i
"""


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float, int]:
    """Median and best of ``repeat`` warm runs, in ms, and the rows returned."""
    result = await call()  # warm the cache
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        result = await call()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), min(samples), len(result) if hasattr(result, "__len__") else 1


async def load(store: PostgresStore, runs: int, now: float) -> None:
    async with store.pool.acquire() as conn:
        began = time.perf_counter()
        await conn.execute(LOAD_RUNS, runs, now)
        print(f"  runs loaded in {time.perf_counter() - began:.1f} s")
        began = time.perf_counter()
        await conn.execute(LOAD_HISTORY)
        print(f"  history loaded in {time.perf_counter() - began:.1f} s")
        began = time.perf_counter()
        await conn.execute("VACUUM ANALYZE runs")
        await conn.execute("VACUUM ANALYZE history")
        print(f"  vacuum analyze in {time.perf_counter() - began:.1f} s")
        sizes = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM history) AS history,"
            " pg_size_pretty(pg_total_relation_size('runs')) AS runs_size,"
            " pg_size_pretty(pg_total_relation_size('history')) AS history_size"
        )
        assert sizes is not None
        print(
            f"  {sizes['runs']:,} runs ({sizes['runs_size']}), {sizes['history']:,} history rows ({sizes['history_size']})"
        )


async def explain(store: PostgresStore, now: float) -> None:
    since = now - DAY
    plans: dict[str, tuple[str, list[Any]]] = {
        "active_counts": (ACTIVE_COUNTS, [["pending", "running", "suspended", "compensating"]]),
        "throughput 24h": (THROUGHPUT, [since, now, 3600.0]),
        "step_stats 24h": (STEP_STATS, [since, now]),
        "error_patterns 24h": (ERROR_PATTERNS, [since, now, 20]),
    }
    async with store.pool.acquire() as conn:
        for name, (sql, args) in plans.items():
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
            print(f"\n-- {name}")
            print("\n".join(r[0] for r in rows))


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--schema", default=f"bench_dashboard_{os.getpid()}")
    parser.add_argument("--keep", action="store_true", help="keep the schema (and reuse it with --schema)")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    args = parser.parse_args()

    store = PostgresStore(DSN, args.schema, min_size=1, max_size=2)
    await store.open()
    now = time.time()
    try:
        await store.migrate()
        async with store.pool.acquire() as conn:
            existing = await conn.fetchval("SELECT count(*) FROM runs")
            if existing:
                now = await conn.fetchval("SELECT max(updated_at) FROM runs")
        if existing:
            print(f"reusing {existing:,} runs in schema {args.schema}")
        else:
            print(f"loading {args.runs:,} runs into schema {args.schema} ...")
            await load(store, args.runs, now)
        insights = PostgresInsights(store)
        queries: dict[str, Callable[[], Awaitable[Any]]] = {
            "active_counts (now)": insights.active_counts,
            "stamp (live updates)": insights.stamp,
        }
        for label, span, bucket in (
            ("1 h", 3600.0, 300.0),
            ("24 h", DAY, 3600.0),
            ("7 d", 7 * DAY, 3600.0),
            ("30 d", 30 * DAY, DAY),
        ):
            since = now - span

            def bind(f: Callable[..., Awaitable[Any]], *a: Any) -> Callable[[], Awaitable[Any]]:
                return lambda: f(*a)

            queries[f"throughput {label}"] = bind(insights.throughput, since, now + 1, bucket)
            queries[f"step_stats {label}"] = bind(insights.step_stats, since, now + 1)
            queries[f"error_patterns {label}"] = bind(insights.error_patterns, since, now + 1, 20)
        queries["runs list (newest 50)"] = lambda: store.list_runs(RunQuery(limit=50))
        queries["runs list status=failed"] = lambda: store.list_runs(RunQuery(RunStatus.FAILED, limit=50))
        queries["runs list status=suspended"] = lambda: store.list_runs(
            RunQuery(RunStatus.SUSPENDED, limit=50)
        )
        queries["runs list workflow=refund"] = lambda: store.list_runs(RunQuery(workflow="refund", limit=50))
        sample = (await store.list_runs(RunQuery(limit=1)))[0].id
        queries["run page (run + history)"] = lambda: asyncio.gather(
            store.load_run(sample), store.history(sample)
        )

        board = Dashboard(store, insights, cache_seconds=0)
        for key in ("24h", "7d", "30d"):

            async def first_view(key: str = key) -> Any:
                board._closed.clear()
                return await board.overview(key)

            queries[f"overview {key}, first view"] = first_view

            async def live_refresh(key: str = key) -> Any:
                return await board.overview(key)

            queries[f"overview {key}, live refresh"] = live_refresh

        print(f"\n{'query':34} {'median ms':>10} {'best ms':>9} {'rows':>6}")
        results = {}
        for name, call in queries.items():
            median, best, rows = await timed(call, args.repeat)
            results[name] = {"median_ms": round(median, 2), "best_ms": round(best, 2), "rows": rows}
            print(f"{name:34} {median:10.1f} {best:9.1f} {rows:6d}")
        if args.explain:
            await explain(store, now)
        out = Path(__file__).parent / "results"
        out.mkdir(exist_ok=True)
        (out / "dashboard_queries.json").write_text(
            json.dumps({"runs": args.runs, "results": results}, indent=2)
        )
    finally:
        if not args.keep:
            async with store.pool.acquire() as conn:
                await conn.execute(f'DROP SCHEMA "{args.schema}" CASCADE')
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
