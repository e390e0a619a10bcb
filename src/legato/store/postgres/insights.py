"""Dashboard aggregates on Postgres, on the store's connection pool."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from legato.machine.run import StepKind
from legato.machine.vocabulary import COMPENSATION_OUTCOMES, STEP_FAILURES, STEP_OUTCOMES, STEP_SUCCESSES
from legato.store.insights import (
    ACTIVE_STATUSES,
    STEP_SAMPLE,
    ErrorPattern,
    Stamp,
    StatusCount,
    StepStats,
    Throughput,
    kinds_sql,
)
from legato.store.postgres import PostgresStore

if TYPE_CHECKING:
    from legato.store.postgres.rows import Conn

ACTIVE_COUNTS = """
SELECT workflow, status, count(*) AS count
FROM runs WHERE status = ANY($1::text[])
GROUP BY workflow, status
"""

# An index-only scan of runs_finished_cover_idx.
THROUGHPUT = """
SELECT workflow,
       floor(extract(epoch FROM finished_at)::float8 / $3) * $3 AS bucket,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'compensated') AS compensated,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       coalesce(sum(extract(epoch FROM finished_at - created_at)::float8), 0) AS total_duration,
       count(*) FILTER (WHERE sla_met) AS sla_met,
       count(*) FILTER (WHERE NOT sla_met) AS sla_missed
FROM runs
WHERE finished_at >= $1 AND finished_at < $2
GROUP BY 1, 2
ORDER BY 2, 1
"""

# The kinds are literals (from the named sets) so that the planner can use the
# partial index history_outcomes_idx (newest first, ``$3`` at most); the
# workflow of each run is looked up once per run.
STEP_STATS = f"""
WITH attempts AS MATERIALIZED (
    SELECT run_id, state, kind, (detail->>'duration')::float8 AS duration
    FROM history
    WHERE kind IN ({kinds_sql(STEP_OUTCOMES)})
      AND at >= $1 AND at < $2
    ORDER BY at DESC
    LIMIT $3
), owners AS (
    SELECT id, workflow FROM runs WHERE id IN (SELECT DISTINCT run_id FROM attempts)
)
SELECT o.workflow, a.state,
       CASE WHEN a.kind IN ({kinds_sql(COMPENSATION_OUTCOMES)}) THEN '{StepKind.COMPENSATION}'
            ELSE '{StepKind.STEP}' END AS step_kind,
       count(*) AS attempts,
       count(*) FILTER (WHERE a.kind IN ({kinds_sql(STEP_SUCCESSES)})) AS succeeded,
       percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY a.duration) AS percentiles
FROM attempts a JOIN owners o ON o.id = a.run_id
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""

# Grouped by exact message here; ErrorPattern.merged groups by the message's pattern.
ERROR_PATTERNS = f"""
WITH failures AS MATERIALIZED (
    SELECT id, run_id, state, at, detail FROM history
    WHERE kind IN ({kinds_sql(STEP_FAILURES)}) AND at >= $1 AND at < $2
    ORDER BY at DESC
    LIMIT $3
)
SELECT r.workflow, h.state,
       coalesce(h.detail->'error'->>'type', '?') AS error_type,
       coalesce(h.detail->'error'->>'message', '') AS sample_message,
       count(*) AS count,
       min(h.at) AS first_seen,
       max(h.at) AS last_seen,
       (array_agg(h.run_id ORDER BY h.at DESC, h.id DESC))[1] AS sample_run
FROM failures h JOIN runs r ON r.id = h.run_id
GROUP BY 1, 2, 3, 4
"""

STAMP = """
SELECT (SELECT coalesce(max(id), 0) FROM history) AS history,
       (SELECT coalesce(max(id), 0) FROM dead_letters) AS dead_letters,
       (SELECT count(*) FROM dead_letters WHERE status = 'open') AS open_dead_letters
"""


class PostgresInsights:
    """Each query runs in its own read-only transaction without JIT: these are
    short scans of indexes, which JIT compilation only slows down."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        # The store's connections: an outage or a missing schema is reported as the store does.
        async with self.store.connection() as conn, conn.transaction(readonly=True):
            await conn.execute("SET LOCAL jit = off")
            yield conn

    async def active_counts(self) -> list[StatusCount]:
        async with self._conn() as conn:
            rows = await conn.fetch(ACTIVE_COUNTS, [s.value for s in ACTIVE_STATUSES])
        return [StatusCount(r["workflow"], r["status"], r["count"]) for r in rows]

    async def throughput(self, since: float, until: float, bucket: float) -> list[Throughput]:
        async with self._conn() as conn:
            rows = await conn.fetch(THROUGHPUT, since, until, float(bucket))
        return [
            Throughput(
                r["workflow"],
                r["bucket"],
                r["succeeded"],
                r["failed"],
                r["compensated"],
                r["cancelled"],
                r["total_duration"],
                r["sla_met"],
                r["sla_missed"],
            )
            for r in rows
        ]

    async def step_stats(self, since: float, until: float, limit: int = STEP_SAMPLE) -> list[StepStats]:
        async with self._conn() as conn:
            rows = await conn.fetch(STEP_STATS, since, until, limit)
        return [
            StepStats(
                r["workflow"], r["state"], r["step_kind"], r["attempts"], r["succeeded"], *r["percentiles"]
            )
            for r in rows
        ]

    async def error_patterns(self, since: float, until: float, limit: int = 20) -> list[ErrorPattern]:
        async with self._conn() as conn:
            rows = await conn.fetch(ERROR_PATTERNS, since, until, STEP_SAMPLE)
        return ErrorPattern.merged(rows, limit)

    async def stamp(self) -> Stamp:
        async with self._conn() as conn:
            row = await conn.fetchrow(STAMP)
        assert row is not None
        return Stamp(row["history"], row["dead_letters"], row["open_dead_letters"])
