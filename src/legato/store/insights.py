"""The read side of the dashboard: aggregates over runs and their history.

A port of its own, beside the store's roles (:mod:`legato.store.ports`),
read from its own connection, so the engine's store stays about transitions. Every query reads indexed columns
(migration 0003) over a time range, so it stays fast with millions of runs;
``benchmarks/dashboard_queries.py`` measures them.

Percentiles are nearest-rank (``percentile_disc``): the smallest duration
that at least that fraction of attempts did not exceed. Both backends
compute the same numbers (tests/contract/test_store_insights.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from legato.machine.run import RunStatus
from legato.machine.vocabulary import HistoryKind
from legato.patterns import error_pattern
from legato.store.ports import Store
from legato.store.rows import Row

ACTIVE_STATUSES = (
    RunStatus.PENDING,
    RunStatus.RUNNING,
    RunStatus.SUSPENDED,
    RunStatus.PAUSED,
    RunStatus.COMPENSATING,
)
FINAL_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.COMPENSATED, RunStatus.CANCELLED)


def kinds_sql(kinds: Collection[HistoryKind]) -> str:
    """``'a', 'b'`` for ``kind IN (...)``: literals rather than a parameter, so
    that the partial indexes whose predicates name the same sets (migration
    0003) can serve the query. In the enum's order: SQLite uses a partial index
    only when the query repeats its ``IN`` list exactly, order included
    (tests/unit/test_vocabulary.py checks the migrations against this)."""
    return ", ".join(f"'{kind.value}'" for kind in HistoryKind if kind in kinds)


STEP_SAMPLE = 20_000
"""Step statistics and error patterns read at most this many of the latest
attempts (failures) in a range:
a month of a busy system would otherwise mean millions of history rows for
one page view. More than enough for p99; rates are over the same sample."""


@dataclass(frozen=True)
class StatusCount:
    workflow: str
    status: str
    count: int


@dataclass(frozen=True)
class Throughput:
    """Runs of one workflow that finished within one time bucket."""

    workflow: str
    bucket: float
    """Start of the bucket, seconds since the epoch."""
    succeeded: int
    failed: int
    compensated: int
    cancelled: int
    total_duration: float
    """Sum of start-to-finish times, for averages over any set of buckets."""
    sla_met: int
    sla_missed: int

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.compensated + self.cancelled


@dataclass(frozen=True)
class StepStats:
    workflow: str
    state: str
    kind: str
    """``step`` or ``compensation``."""
    attempts: int
    succeeded: int
    p50: float | None
    p95: float | None
    p99: float | None

    @property
    def failed(self) -> int:
        return self.attempts - self.succeeded


@dataclass(frozen=True)
class ErrorPattern:
    """Failed attempts sharing workflow, state, error type and message pattern
    (:func:`legato.patterns.error_pattern`)."""

    workflow: str
    state: str
    error_type: str
    count: int
    first_seen: float
    last_seen: float
    sample_message: str
    sample_run: str
    pattern: str = ""
    """The message with its values masked: what the attempts have in common."""

    @classmethod
    def from_row(cls, row: Row) -> ErrorPattern:
        return cls(
            row["workflow"],
            row["state"] or "",
            row["error_type"],
            row["count"],
            row["first_seen"],
            row["last_seen"],
            row["sample_message"],
            row["sample_run"],
            error_pattern(row["sample_message"]),
        )

    @classmethod
    def merged(cls, rows: Iterable[Row], limit: int) -> list[ErrorPattern]:
        """Rows grouped by exact message, merged by pattern; the most frequent first."""
        found: dict[tuple[str, str, str, str], ErrorPattern] = {}
        for row in rows:
            one = cls.from_row(row)
            key = (one.workflow, one.state, one.error_type, one.pattern)
            seen = found.get(key)
            found[key] = one if seen is None else seen._with(one)
        ranked = sorted(found.values(), key=lambda p: (-p.count, -p.last_seen))
        return ranked[:limit]

    def _with(self, other: ErrorPattern) -> ErrorPattern:
        newest = other if other.last_seen > self.last_seen else self
        return replace(
            newest,
            count=self.count + other.count,
            first_seen=min(self.first_seen, other.first_seen),
            last_seen=max(self.last_seen, other.last_seen),
        )


@dataclass(frozen=True)
class Stamp:
    """Changes whenever anything the dashboard shows may have changed."""

    history: int
    dead_letters: int
    open_dead_letters: int


class Insights(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def active_counts(self) -> list[StatusCount]:
        """Runs not finished, by workflow and status: what is going on now."""

    async def throughput(self, since: float, until: float, bucket: float) -> list[Throughput]:
        """Runs finished in ``[since, until)``, by workflow and ``bucket``-second slot."""

    async def step_stats(self, since: float, until: float, limit: int = STEP_SAMPLE) -> list[StepStats]:
        """The latest ``limit`` attempts that ended in ``[since, until)``: success
        and latency by step."""

    async def error_patterns(self, since: float, until: float, limit: int = 20) -> list[ErrorPattern]:
        """The latest failed attempts in ``[since, until)`` (at most ``STEP_SAMPLE``),
        grouped; the most frequent first."""

    async def stamp(self) -> Stamp: ...


def insights_for(store: Store) -> Insights:
    """The insights that read the same database as ``store``."""
    from legato.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from legato.store.sqlite.insights import SqliteInsights

        return SqliteInsights(store.path)
    from legato.store.postgres import PostgresStore
    from legato.store.postgres.insights import PostgresInsights

    if isinstance(store, PostgresStore):
        return PostgresInsights(store)
    raise TypeError(f"no insights for a {type(store).__name__}")
