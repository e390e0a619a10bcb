"""Dashboard aggregates on the embedded store.

A read-only connection of its own: SQLite in WAL mode lets it read while a
worker writes, and a long aggregate never holds the store's write lock.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

from legato.errors import StoreError
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

ACTIVE_COUNTS = """
SELECT workflow, status, count(*) AS count
FROM runs WHERE status IN ({marks})
GROUP BY workflow, status
"""

THROUGHPUT = """
SELECT workflow,
       CAST(finished_at / :bucket AS INTEGER) * :bucket AS bucket,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'compensated') AS compensated,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       coalesce(sum(finished_at - created_at), 0) AS total_duration,
       count(*) FILTER (WHERE sla_met = 1) AS sla_met,
       count(*) FILTER (WHERE sla_met = 0) AS sla_missed
FROM runs
WHERE finished_at >= :since AND finished_at < :until
GROUP BY 1, 2
ORDER BY 2, 1
"""

# Nearest-rank percentiles, as Postgres's percentile_disc: the smallest
# duration whose rank reaches the fraction of the attempts that have one.
STEP_STATS = f"""
WITH latest AS (
    SELECT run_id, state, kind, detail FROM history
    WHERE kind IN ({kinds_sql(STEP_OUTCOMES)})
      AND at >= :since AND at < :until
    ORDER BY at DESC
    LIMIT :limit
), attempts AS (
    SELECT r.workflow, h.state,
           CASE WHEN h.kind IN ({kinds_sql(COMPENSATION_OUTCOMES)}) THEN '{StepKind.COMPENSATION}'
            ELSE '{StepKind.STEP}' END AS step_kind,
           h.kind IN ({kinds_sql(STEP_SUCCESSES)}) AS ok,
           json_extract(h.detail, '$.duration') AS duration
    FROM latest h JOIN runs r ON r.id = h.run_id
), ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY workflow, state, step_kind ORDER BY duration NULLS LAST) AS rn,
           count(duration) OVER (PARTITION BY workflow, state, step_kind) AS n
    FROM attempts
)
SELECT workflow, state, step_kind,
       count(*) AS attempts,
       sum(ok) AS succeeded,
       min(CASE WHEN duration IS NOT NULL AND rn >= 0.5 * n THEN duration END) AS p50,
       min(CASE WHEN duration IS NOT NULL AND rn >= 0.95 * n THEN duration END) AS p95,
       min(CASE WHEN duration IS NOT NULL AND rn >= 0.99 * n THEN duration END) AS p99
FROM ranked
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""

# Grouped by exact message here; ErrorPattern.merged groups by the message's pattern.
ERROR_PATTERNS = f"""
WITH latest AS (
    SELECT id, run_id, state, at, detail FROM history
    WHERE kind IN ({kinds_sql(STEP_FAILURES)}) AND at >= :since AND at < :until
    ORDER BY at DESC
    LIMIT :sample
), failures AS (
    SELECT r.workflow, coalesce(h.state, '') AS state,
           coalesce(json_extract(h.detail, '$.error.type'), '?') AS error_type,
           coalesce(json_extract(h.detail, '$.error.message'), '') AS message,
           h.run_id, h.at, h.id
    FROM latest h JOIN runs r ON r.id = h.run_id
), ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY workflow, state, error_type, message ORDER BY at DESC, id DESC) AS latest,
           count(*) OVER (PARTITION BY workflow, state, error_type, message) AS count,
           min(at) OVER (PARTITION BY workflow, state, error_type, message) AS first_seen
    FROM failures
)
SELECT workflow, state, error_type, count, first_seen, at AS last_seen,
       message AS sample_message, run_id AS sample_run
FROM ranked WHERE latest = 1
"""

STAMP = """
SELECT (SELECT coalesce(max(id), 0) FROM history) AS history,
       (SELECT coalesce(max(id), 0) FROM dead_letters) AS dead_letters,
       (SELECT count(*) FROM dead_letters WHERE status = 'open') AS open_dead_letters
"""


class SqliteInsights:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        if self._db is not None:
            return
        try:
            self._db = await aiosqlite.connect(self.path)
            self._db.row_factory = aiosqlite.Row
            await self._db.execute("PRAGMA query_only=ON")
            await self._db.execute("PRAGMA busy_timeout=10000")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the SQLite store at {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _fetch(self, sql: str, args: Any = ()) -> list[aiosqlite.Row]:
        if self._db is None:
            raise StoreError("the insights are not open")
        try:
            cursor = await self._db.execute(sql, args)
            return list(await cursor.fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"dashboard query failed: {exc}") from exc

    async def active_counts(self) -> list[StatusCount]:
        statuses = [s.value for s in ACTIVE_STATUSES]
        rows = await self._fetch(ACTIVE_COUNTS.format(marks=", ".join("?" * len(statuses))), statuses)
        return [StatusCount(r["workflow"], r["status"], r["count"]) for r in rows]

    async def throughput(self, since: float, until: float, bucket: float) -> list[Throughput]:
        rows = await self._fetch(THROUGHPUT, {"since": since, "until": until, "bucket": float(bucket)})
        return [
            Throughput(
                r["workflow"],
                float(r["bucket"]),
                r["succeeded"],
                r["failed"],
                r["compensated"],
                r["cancelled"],
                float(r["total_duration"]),
                r["sla_met"],
                r["sla_missed"],
            )
            for r in rows
        ]

    async def step_stats(self, since: float, until: float, limit: int = STEP_SAMPLE) -> list[StepStats]:
        rows = await self._fetch(STEP_STATS, {"since": since, "until": until, "limit": limit})
        return [
            StepStats(
                r["workflow"],
                r["state"],
                r["step_kind"],
                r["attempts"],
                r["succeeded"],
                r["p50"],
                r["p95"],
                r["p99"],
            )
            for r in rows
        ]

    async def error_patterns(self, since: float, until: float, limit: int = 20) -> list[ErrorPattern]:
        rows = await self._fetch(ERROR_PATTERNS, {"since": since, "until": until, "sample": STEP_SAMPLE})
        return ErrorPattern.merged(rows, limit)

    async def stamp(self) -> Stamp:
        [row] = await self._fetch(STAMP)
        return Stamp(row["history"], row["dead_letters"], row["open_dead_letters"])
