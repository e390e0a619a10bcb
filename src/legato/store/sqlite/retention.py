"""The SQLite store's retention role (:class:`~legato.store.retention.RetentionStore`):
the Postgres queries, with plain deletes."""

from __future__ import annotations

from collections.abc import Sequence

from legato.store.retention import (
    Cutoff,
    ExpiredRun,
    HistoryPartition,
    Removal,
    Removed,
    RetentionStatus,
)
from legato.store.sqlite import sql as q
from legato.store.sqlite.connection import SqliteConnection

_HELD = "EXISTS (SELECT 1 FROM dead_letters d WHERE d.run_id = r.id AND d.status = 'open')"

_EXPIRED = f"""
SELECT id, workflow, finished_at FROM runs r
WHERE {{which}} AND finished_at IS NOT NULL AND finished_at < ? AND NOT {_HELD}
ORDER BY finished_at LIMIT ?
"""

_COUNT = f"""
SELECT workflow, sum(NOT held) AS removable, sum(held) AS held FROM (
    SELECT workflow, {_HELD} AS held FROM runs r
    WHERE {{which}} AND finished_at IS NOT NULL AND finished_at < ?
) GROUP BY workflow
"""

_FINISHED = """
SELECT id, workflow, finished_at FROM runs
WHERE workflow = ? AND finished_at >= ? AND finished_at < ?
  AND (? IS NULL OR (finished_at, id) > (?, ?))
ORDER BY finished_at, id LIMIT ?
"""

_STILL_REMOVABLE = f"""
SELECT id, workflow, idempotency_key, finished_at FROM runs r
WHERE id = ? AND finished_at IS NOT NULL AND finished_at < ? AND NOT {_HELD}
"""

_RETIRE_KEY = """
INSERT INTO retired_keys (key, run_id, workflow, finished_at, expires_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET run_id = excluded.run_id, workflow = excluded.workflow,
    finished_at = excluded.finished_at, expires_at = max(retired_keys.expires_at, excluded.expires_at)
"""

_DELETES = (
    ("history", "DELETE FROM history WHERE run_id IN ({ids})"),
    ("timers", "DELETE FROM timers WHERE run_id IN ({ids})"),
    ("outbox", "DELETE FROM outbox WHERE run_id IN ({ids})"),
    ("dead_letters", "DELETE FROM dead_letters WHERE run_id IN ({ids}) AND status <> 'open'"),
    ("runs", "DELETE FROM runs WHERE id IN ({ids})"),
)

_CHUNK = 500

_REMOVE_RESOLVED_LETTERS = """
DELETE FROM dead_letters WHERE id IN (
    SELECT id FROM dead_letters
    WHERE run_id IS NULL AND status <> 'open' AND resolved_at < ?
    ORDER BY resolved_at LIMIT ?
)
"""

_COUNT_RESOLVED_LETTERS = """
SELECT count(*) FROM dead_letters WHERE run_id IS NULL AND status <> 'open' AND resolved_at < ?
"""

_KEY_COUNTS = "SELECT count(*), coalesce(sum(expires_at <= ?), 0) FROM retired_keys"

_OLDEST = """
SELECT (SELECT min(created_at) FROM runs), (SELECT min(finished_at) FROM runs),
       (SELECT min(at) FROM history)
"""

_TAKE_LEASE = """
INSERT INTO maintenance_leases (name, holder, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE maintenance_leases.holder = excluded.holder OR maintenance_leases.expires_at <= ?
"""


def _which(cutoff: Cutoff, cutoffs: Sequence[Cutoff]) -> tuple[str, list[str]]:
    """The workflow condition of a cutoff, and its parameters."""
    if cutoff.workflow is not None:
        return "workflow = ?", [cutoff.workflow]
    named = [c.workflow for c in cutoffs if c.workflow is not None]
    return f"workflow NOT IN ({', '.join('?' * len(named))})", named


class SqliteRetention(SqliteConnection):
    async def expired_runs(self, cutoffs: Sequence[Cutoff], limit: int) -> list[ExpiredRun]:
        found: list[ExpiredRun] = []
        for cutoff in cutoffs:
            if len(found) >= limit:
                break
            which, args = _which(cutoff, cutoffs)
            rows = await self._read(
                _EXPIRED.format(which=which), *args, cutoff.finished_before, limit - len(found)
            )
            found += [ExpiredRun(r["id"], r["workflow"], r["finished_at"]) for r in rows]
        return found

    async def finished_runs(
        self, workflow: str, since: float, until: float, after: ExpiredRun | None, limit: int
    ) -> list[ExpiredRun]:
        at, last = (after.finished_at, after.run_id) if after else (None, None)
        rows = await self._read(_FINISHED, workflow, since, until, at, at, last, limit)
        return [ExpiredRun(r["id"], r["workflow"], r["finished_at"]) for r in rows]

    async def remove_runs(self, removals: Sequence[Removal], *, history: bool = True) -> Removed:
        counts = dict.fromkeys((table for table, _ in _DELETES), 0)
        async with self._write() as db:
            ids: list[str] = []
            for removal in removals:
                cursor = await db.execute(_STILL_REMOVABLE, (removal.run_id, removal.finished_before))
                row = await cursor.fetchone()
                if row is None:
                    continue
                ids.append(row["id"])
                if row["idempotency_key"] is not None:
                    await db.execute(
                        _RETIRE_KEY,
                        (
                            row["idempotency_key"],
                            row["id"],
                            row["workflow"],
                            row["finished_at"],
                            removal.keep_key_until,
                        ),
                    )
            # In chunks: older SQLite builds take at most 999 parameters a statement.
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                for table, sql in _DELETES:
                    if table == "history" and not history:
                        continue
                    cursor = await db.execute(sql.format(ids=marks), chunk)
                    counts[table] += cursor.rowcount
        return Removed(**counts)

    # History is one table here: retention deletes its rows, there is nothing to drop.

    async def prepare_partitions(self, now: float, days_ahead: int) -> list[str]:
        return []

    async def droppable_partitions(self, cutoffs: Sequence[Cutoff]) -> list[HistoryPartition]:
        return []

    async def finished_runs_created(self, partition: HistoryPartition, limit: int) -> list[ExpiredRun]:
        return []

    async def drop_partition(self, partition: HistoryPartition) -> Removed:
        return Removed()

    async def remove_resolved_dead_letters(self, resolved_before: float, limit: int) -> int:
        async with self._write() as db:
            cursor = await db.execute(_REMOVE_RESOLVED_LETTERS, (resolved_before, limit))
            return cursor.rowcount

    async def forget_keys(self, now: float) -> int:
        async with self._write() as db:
            cursor = await db.execute("DELETE FROM retired_keys WHERE expires_at <= ?", (now,))
            return cursor.rowcount

    async def retired_key(self, key: str, now: float) -> tuple[str, float] | None:
        rows = await self._read(q.RETIRED_KEY, key, now)
        return (rows[0]["run_id"], rows[0]["expires_at"]) if rows else None

    async def retention_status(self, cutoffs: Sequence[Cutoff], now: float) -> RetentionStatus:
        expired: dict[str, int] = {}
        held = 0
        for cutoff in cutoffs:
            which, args = _which(cutoff, cutoffs)
            for r in await self._read(_COUNT.format(which=which), *args, cutoff.finished_before):
                if r["removable"]:
                    expired[r["workflow"]] = r["removable"]
                held += r["held"]
        default = next((c for c in cutoffs if c.workflow is None), None)
        letters = 0
        if default is not None:
            letters = (await self._read(_COUNT_RESOLVED_LETTERS, default.finished_before))[0][0]
        kept, expired_keys = (await self._read(_KEY_COUNTS, now))[0]
        oldest = (await self._read(_OLDEST))[0]
        return RetentionStatus(
            expired=expired,
            kept_by_dead_letters=held,
            resolved_dead_letters=letters,
            expired_keys=expired_keys,
            retired_keys=kept,
            oldest_run=oldest[0],
            oldest_finished=oldest[1],
            oldest_history=oldest[2],
        )

    async def take_maintenance_lease(self, name: str, holder: str, now: float, seconds: float) -> bool:
        async with self._write() as db:
            await db.execute(_TAKE_LEASE, (name, holder, now + seconds, now))
            cursor = await db.execute("SELECT holder FROM maintenance_leases WHERE name = ?", (name,))
            row = await cursor.fetchone()
        return row is not None and row[0] == holder

    async def release_maintenance_lease(self, name: str, holder: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM maintenance_leases WHERE name = ? AND holder = ?", (name, holder))
