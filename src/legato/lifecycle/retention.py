"""Retention: finished runs older than their workflow's retention period go,
with their history, timers, outbox rows and resolved dead letters; their
idempotency keys stay for the dedupe window (docs/retention.md).

Any worker may run a pass; a lease in the database (``maintenance_leases``)
lets one at a time do it. ``legato retention run`` runs one on demand.

On Postgres, history is partitioned by the day its runs were created
(migration 0017): a pass first creates the partitions of the days ahead, then
empties each day none of whose runs must be kept (its runs are removed without
their history rows) and drops that day's partition whole; the remaining
expired runs go row by row.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from legato.app import App
from legato.clock import Clock
from legato.lifecycle.archive import Archive, ExportSource, fetch
from legato.observe import Observer, RetentionRanInput
from legato.store.retention import Cutoff, ExpiredRun, Removal, Removed, RetentionStatus

log = logging.getLogger("legato.retention")

DAY = 86400.0
LEASE = "retention"
"""The name of the lease one retention pass holds at a time."""
LEASE_SECONDS = 300.0
"""How long a pass holds the lease without renewing it (it renews every batch)."""
PARTITION_DAYS_AHEAD = 7
"""Days of history partitions created ahead of time by every pass."""


@dataclass(frozen=True)
class RetentionPolicy:
    """How long finished runs are kept: by workflow, else the default (None: forever)."""

    default: float | None = None
    workflows: Mapping[str, float] = field(default_factory=dict)
    dedupe: float | None = None
    """Seconds a removed run's key is kept after its removal; None: the run's retention."""

    @classmethod
    def of(cls, app: App | None, retention_days: float | None, dedupe_days: float | None) -> RetentionPolicy:
        """The workflows' own periods (their newest version's) and the configured default
        (``[worker] retention_days`` and ``dedupe_days``)."""
        own = {wf.name: wf.retention for wf in (app.workflows() if app else []) if wf.retention is not None}
        return cls(
            default=retention_days * DAY if retention_days is not None else None,
            workflows=own,
            dedupe=dedupe_days * DAY if dedupe_days is not None else None,
        )

    @property
    def enabled(self) -> bool:
        return self.default is not None or bool(self.workflows)

    def cutoffs(self, now: float) -> list[Cutoff]:
        found = [
            Cutoff(name, now - period, self.keep_keys(period)) for name, period in self.workflows.items()
        ]
        if self.default is not None:
            found.append(Cutoff(None, now - self.default, self.keep_keys(self.default)))
        return found

    def keep_keys(self, period: float) -> float:
        return self.dedupe if self.dedupe is not None else period


@dataclass(frozen=True)
class RetentionReport:
    removed: Removed
    seconds: float
    archived: tuple[Path, ...] = ()


class Retention:
    def __init__(
        self,
        store: ExportSource,
        policy: RetentionPolicy,
        clock: Clock,
        *,
        holder: str,
        batch: int = 500,
        archive: Archive | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.holder = holder
        self.batch = batch
        self.archive = archive
        self.observer = observer or Observer()

    async def status(self) -> RetentionStatus:
        return await self.store.retention_status(self.policy.cutoffs(self.clock.now()), self.clock.now())

    async def run(self) -> RetentionReport | None:
        """One pass; None when another process holds the lease (its pass is running)."""
        now = self.clock.now()
        if not await self.store.take_maintenance_lease(LEASE, self.holder, now, LEASE_SECONDS):
            return None
        started = self.clock.monotonic()
        progress = _Progress()
        try:
            created = await self.store.prepare_partitions(now, PARTITION_DAYS_AHEAD)
            if created:
                log.info("created history partitions %s", ", ".join(created))
            if self.policy.enabled:
                await self._remove(now, progress)
        finally:
            # Counted even when the pass breaks off (an outage): what was
            # removed until then is gone.
            seconds = self.clock.monotonic() - started
            self.observer.retention_ran(RetentionRanInput(progress.removed.by_table(), seconds))
            with anyio.CancelScope(shield=True):
                await self.store.release_maintenance_lease(LEASE, self.holder)
        removed = progress.removed
        if removed.runs or removed.dead_letters or removed.retired_keys or removed.history_partitions:
            log.info("retention removed %s in %.1fs", removed.by_table(), seconds)
        return RetentionReport(removed, seconds, tuple(sorted(progress.archived)))

    async def loop(self, interval: float) -> None:
        """A pass every ``interval`` seconds, for the worker's side task."""
        while True:
            await self.run()
            await anyio.sleep(interval)

    async def _remove(self, now: float, progress: _Progress) -> None:
        cutoffs = self.policy.cutoffs(now)
        by_workflow = {c.workflow: c for c in cutoffs}
        for partition in await self.store.droppable_partitions(cutoffs):
            while expired := await self.store.finished_runs_created(partition, self.batch):
                removed = await self._remove_batch(expired, by_workflow, now, progress, history=False)
                if removed.runs == 0:
                    break  # each was resumed or dead-lettered since it was found
            # Dropped only if none of the day's runs is left; else only the
            # rows of the runs just removed go.
            progress.removed += await self.store.drop_partition(partition)
        while expired := await self.store.expired_runs(cutoffs, self.batch):
            removed = await self._remove_batch(expired, by_workflow, now, progress)
            if removed.runs == 0:
                break  # each was resumed or dead-lettered since it was found
        if self.policy.default is not None:
            before = now - self.policy.default
            while (gone := await self.store.remove_resolved_dead_letters(before, self.batch)) > 0:
                progress.removed += Removed(dead_letters=gone)
                if gone < self.batch:
                    break
        progress.removed += Removed(retired_keys=await self.store.forget_keys(now))

    async def _remove_batch(
        self,
        expired: list[ExpiredRun],
        by_workflow: Mapping[str | None, Cutoff],
        now: float,
        progress: _Progress,
        history: bool = True,
    ) -> Removed:
        if self.archive is not None:
            written = await self.archive.write(await fetch(self.store, [e.run_id for e in expired]))
            progress.archived.update(written)
        removals = [self._removal(e, by_workflow, now) for e in expired]
        removed = await self.store.remove_runs(removals, history=history)
        progress.removed += removed
        # Renewed every batch: a long pass keeps the lease, a dead one loses it.
        await self.store.take_maintenance_lease(LEASE, self.holder, self.clock.now(), LEASE_SECONDS)
        return removed

    def _removal(self, expired: ExpiredRun, by_workflow: Mapping[str | None, Cutoff], now: float) -> Removal:
        cutoff = by_workflow.get(expired.workflow) or by_workflow[None]
        return Removal(expired.run_id, cutoff.finished_before, now + cutoff.keep_keys_for)


@dataclass
class _Progress:
    """What a pass has done so far."""

    removed: Removed = field(default_factory=Removed)
    archived: set[Path] = field(default_factory=set)
