"""The retention role of the store: what finished runs have expired, their
removal, the idempotency keys kept after them, and the lease that lets one
worker at a time do it (docs/retention.md).

The values that cross the port live here too; the policy (which workflow
keeps its runs how long) is :mod:`legato.retention`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Cutoff:
    """Runs of ``workflow`` finished before ``finished_before`` have expired.

    ``workflow`` None is every workflow that no other cutoff of the same call
    names (the default retention).
    """

    workflow: str | None
    finished_before: float
    keep_keys_for: float
    """Seconds a removed run's idempotency key is kept after its removal."""


@dataclass(frozen=True)
class ExpiredRun:
    run_id: str
    workflow: str
    finished_at: float


@dataclass(frozen=True)
class Removal:
    """One run to remove; it is removed only if still finished before ``finished_before``."""

    run_id: str
    finished_before: float
    keep_key_until: float


@dataclass(frozen=True)
class Removed:
    """Rows removed, by table."""

    runs: int = 0
    history: int = 0
    timers: int = 0
    outbox: int = 0
    dead_letters: int = 0
    retired_keys: int = 0
    """Keys whose dedupe window ended, forgotten (not the keys kept)."""
    history_partitions: int = 0
    """Partitions of history dropped whole (Postgres); their rows are not
    counted in ``history``, which counts rows deleted one by one."""

    def __add__(self, other: Removed) -> Removed:
        return Removed(
            self.runs + other.runs,
            self.history + other.history,
            self.timers + other.timers,
            self.outbox + other.outbox,
            self.dead_letters + other.dead_letters,
            self.retired_keys + other.retired_keys,
            self.history_partitions + other.history_partitions,
        )

    def by_table(self) -> dict[str, int]:
        return {
            "runs": self.runs,
            "history": self.history,
            "timers": self.timers,
            "outbox": self.outbox,
            "dead_letters": self.dead_letters,
            "retired_keys": self.retired_keys,
            "history_partitions": self.history_partitions,
        }


@dataclass(frozen=True)
class HistoryPartition:
    """One partition of history (Postgres): the history of the runs created in [since, until)."""

    name: str
    since: float
    until: float


@dataclass(frozen=True)
class RetentionStatus:
    """What a retention pass would remove now, and the oldest data kept."""

    expired: Mapping[str, int]
    """Expired runs by workflow (removable: no open dead letter)."""
    kept_by_dead_letters: int
    """Expired runs kept because a dead letter of theirs is open."""
    resolved_dead_letters: int
    """Resolved dead letters of no run (poison messages) past the default retention."""
    expired_keys: int
    """Retired idempotency keys whose dedupe window has ended."""
    retired_keys: int
    """Retired idempotency keys kept."""
    oldest_run: float | None
    """Creation time of the oldest run kept."""
    oldest_finished: float | None
    """Finish time of the oldest finished run kept."""
    oldest_history: float | None


class RetentionStore(Protocol):
    """Removing expired finished runs; open dead letters and unfinished runs never go."""

    async def expired_runs(self, cutoffs: Sequence[Cutoff], limit: int) -> list[ExpiredRun]:
        """Up to ``limit`` finished runs past their cutoff and without an open
        dead letter, oldest first within each cutoff."""

    async def finished_runs(
        self, workflow: str, since: float, until: float, after: ExpiredRun | None, limit: int
    ) -> list[ExpiredRun]:
        """Runs of ``workflow`` finished in [since, until), by finish time then id,
        those after ``after`` (the last of the previous page): what ``legato export`` writes."""

    async def remove_runs(self, removals: Sequence[Removal], *, history: bool = True) -> Removed:
        """Remove the runs in one transaction with their history, timers, outbox
        rows and (resolved) dead letters; keep each one's idempotency key until
        ``keep_key_until``. A run that is unfinished again, finished later than
        its cutoff, or has an open dead letter now is left alone. ``history``
        False leaves their history rows to :meth:`drop_partition`."""

    async def prepare_partitions(self, now: float, days_ahead: int) -> list[str]:
        """Create the history partitions of the days from yesterday to ``days_ahead``
        days after ``now`` that are missing; their names. A no-op where history
        is not partitioned (SQLite)."""

    async def droppable_partitions(self, cutoffs: Sequence[Cutoff]) -> list[HistoryPartition]:
        """The history partitions, oldest first, none of whose runs must be kept:
        every run created in its range is removable by ``cutoffs`` (or already
        gone). Empty where history is not partitioned."""

    async def finished_runs_created(self, partition: HistoryPartition, limit: int) -> list[ExpiredRun]:
        """Up to ``limit`` finished runs created in the partition's range."""

    async def drop_partition(self, partition: HistoryPartition) -> Removed:
        """Drop the partition if no run created in its range is left; else delete
        only its rows whose run is gone (a run was resumed meanwhile). Nothing,
        when the partition's table cannot be locked now (the next pass retries)."""

    async def remove_resolved_dead_letters(self, resolved_before: float, limit: int) -> int:
        """Delete resolved dead letters of no run, resolved before ``resolved_before``."""

    async def forget_keys(self, now: float) -> int:
        """Delete retired idempotency keys whose dedupe window ended by ``now``."""

    async def retired_key(self, key: str, now: float) -> tuple[str, float] | None:
        """The removed run that held ``key`` and the end of its dedupe window, if not ended."""

    async def retention_status(self, cutoffs: Sequence[Cutoff], now: float) -> RetentionStatus: ...

    async def take_maintenance_lease(self, name: str, holder: str, now: float, seconds: float) -> bool:
        """Take (or extend) the lease ``name`` for ``holder``, unless another holds it unexpired."""

    async def release_maintenance_lease(self, name: str, holder: str) -> None:
        """Give the lease back (a no-op when ``holder`` no longer holds it)."""
