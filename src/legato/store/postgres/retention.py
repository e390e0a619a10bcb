"""The Postgres store's retention role (:class:`~legato.store.retention.RetentionStore`)."""

from __future__ import annotations

from collections.abc import Sequence

from legato.store.postgres import partitions
from legato.store.postgres import sql as q
from legato.store.postgres.connection import PostgresConnection
from legato.store.retention import (
    Cutoff,
    ExpiredRun,
    HistoryPartition,
    Removal,
    Removed,
    RetentionStatus,
)

# A run with an open dead letter is kept: replaying the letter resumes it.
_REMOVABLE = """
finished_at IS NOT NULL AND finished_at < $2
AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.run_id = r.id AND d.status = 'open')
"""

_EXPIRED_OF = f"""
SELECT id, workflow, finished_at FROM runs r
WHERE workflow = $1 AND {_REMOVABLE}
ORDER BY finished_at LIMIT $3
"""

_EXPIRED_OTHERS = f"""
SELECT id, workflow, finished_at FROM runs r
WHERE NOT (workflow = ANY($1::text[])) AND {_REMOVABLE}
ORDER BY finished_at LIMIT $3
"""

_COUNT_OF = """
SELECT count(*) FILTER (WHERE NOT held) AS removable, count(*) FILTER (WHERE held) AS held
FROM (
    SELECT workflow, EXISTS (
        SELECT 1 FROM dead_letters d WHERE d.run_id = r.id AND d.status = 'open'
    ) AS held
    FROM runs r WHERE workflow = $1 AND finished_at IS NOT NULL AND finished_at < $2
) expired
"""

_COUNT_OTHERS = """
SELECT workflow, count(*) FILTER (WHERE NOT held) AS removable, count(*) FILTER (WHERE held) AS held
FROM (
    SELECT workflow, EXISTS (
        SELECT 1 FROM dead_letters d WHERE d.run_id = r.id AND d.status = 'open'
    ) AS held
    FROM runs r WHERE NOT (workflow = ANY($1::text[])) AND finished_at IS NOT NULL AND finished_at < $2
) expired
GROUP BY workflow
"""

# Locks the runs still removable; a run resumed or given an open dead letter
# since it was found is left out.
_FINISHED = """
SELECT id, workflow, finished_at FROM runs
WHERE workflow = $1 AND finished_at >= $2 AND finished_at < $3
  AND ($4::timestamptz IS NULL OR (finished_at, id) > ($4, $5::uuid))
ORDER BY finished_at, id LIMIT $6
"""

_LOCK_REMOVABLE = """
SELECT r.id, r.workflow, r.idempotency_key, r.finished_at, r.created_at, b.key_until
FROM unnest($1::uuid[], $2::float8[], $3::float8[]) AS b(id, before, key_until)
JOIN runs r ON r.id = b.id
WHERE r.finished_at IS NOT NULL AND r.finished_at < to_timestamp(b.before)
  AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.run_id = r.id AND d.status = 'open')
FOR UPDATE OF r
"""

_RETIRE_KEYS = """
INSERT INTO retired_keys (key, run_id, workflow, finished_at, expires_at)
SELECT k, id, w, to_timestamp(f), to_timestamp(u)
FROM unnest($1::text[], $2::uuid[], $3::text[], $4::float8[], $5::float8[]) AS t(k, id, w, f, u)
ON CONFLICT (key) DO UPDATE SET run_id = excluded.run_id, workflow = excluded.workflow,
    finished_at = excluded.finished_at, expires_at = greatest(retired_keys.expires_at, excluded.expires_at)
"""

# The runs' creation times pick the partitions of their history (pruning).
_DELETE_HISTORY = """
DELETE FROM history WHERE run_id = ANY($1::uuid[]) AND run_created_at = ANY($2::timestamptz[])
"""

_DELETES = (
    ("timers", "DELETE FROM timers WHERE run_id = ANY($1::uuid[])"),
    ("outbox", "DELETE FROM outbox WHERE run_id = ANY($1::uuid[])"),
    ("dead_letters", "DELETE FROM dead_letters WHERE run_id = ANY($1::uuid[]) AND status <> 'open'"),
    ("runs", "DELETE FROM runs WHERE id = ANY($1::uuid[])"),
)

_REMOVE_RESOLVED_LETTERS = """
DELETE FROM dead_letters WHERE id IN (
    SELECT id FROM dead_letters
    WHERE run_id IS NULL AND status <> 'open' AND resolved_at < $1
    ORDER BY resolved_at LIMIT $2
)
"""

_COUNT_RESOLVED_LETTERS = """
SELECT count(*) FROM dead_letters WHERE run_id IS NULL AND status <> 'open' AND resolved_at < $1
"""

_FORGET_KEYS = "DELETE FROM retired_keys WHERE expires_at <= $1"

_KEY_COUNTS = """
SELECT count(*) AS kept, count(*) FILTER (WHERE expires_at <= $1) AS expired FROM retired_keys
"""

_OLDEST = """
SELECT (SELECT min(created_at) FROM runs) AS run,
       (SELECT min(finished_at) FROM runs WHERE finished_at IS NOT NULL) AS finished,
       (SELECT min(at) FROM history) AS history
"""

_TAKE_LEASE = """
INSERT INTO maintenance_leases AS l (name, holder, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at <= $4
RETURNING holder
"""

_RELEASE_LEASE = "DELETE FROM maintenance_leases WHERE name = $1 AND holder = $2"


def _count(status: str) -> int:
    """Rows touched, from a command status such as ``DELETE 12``."""
    return int(status.rsplit(" ", 1)[-1])


def _named(cutoffs: Sequence[Cutoff]) -> list[str]:
    return [c.workflow for c in cutoffs if c.workflow is not None]


class PostgresRetention(PostgresConnection):
    async def expired_runs(self, cutoffs: Sequence[Cutoff], limit: int) -> list[ExpiredRun]:
        found: list[ExpiredRun] = []
        async with self._conn() as conn:
            for cutoff in cutoffs:
                if len(found) >= limit:
                    break
                which = (
                    (_EXPIRED_OF, cutoff.workflow) if cutoff.workflow else (_EXPIRED_OTHERS, _named(cutoffs))
                )
                rows = await conn.fetch(which[0], which[1], cutoff.finished_before, limit - len(found))
                found += [ExpiredRun(r["id"], r["workflow"], r["finished_at"]) for r in rows]
        return found

    async def finished_runs(
        self, workflow: str, since: float, until: float, after: ExpiredRun | None, limit: int
    ) -> list[ExpiredRun]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                _FINISHED,
                workflow,
                since,
                until,
                after.finished_at if after else None,
                after.run_id if after else None,
                limit,
            )
        return [ExpiredRun(r["id"], r["workflow"], r["finished_at"]) for r in rows]

    async def remove_runs(self, removals: Sequence[Removal], *, history: bool = True) -> Removed:
        if not removals:
            return Removed()
        async with self._conn() as conn, conn.transaction():
            rows = await conn.fetch(
                _LOCK_REMOVABLE,
                [r.run_id for r in removals],
                [r.finished_before for r in removals],
                [r.keep_key_until for r in removals],
            )
            if not rows:
                return Removed()
            keyed = [r for r in rows if r["idempotency_key"] is not None]
            await conn.execute(
                _RETIRE_KEYS,
                [r["idempotency_key"] for r in keyed],
                [r["id"] for r in keyed],
                [r["workflow"] for r in keyed],
                [r["finished_at"] for r in keyed],
                [r["key_until"] for r in keyed],
            )
            ids = [r["id"] for r in rows]
            counts = {table: _count(await conn.execute(sql, ids)) for table, sql in _DELETES}
            if history:
                created = list({r["created_at"] for r in rows})
                counts["history"] = _count(await conn.execute(_DELETE_HISTORY, ids, created))
        return Removed(**counts)

    async def prepare_partitions(self, now: float, days_ahead: int) -> list[str]:
        async with self._conn() as conn:
            return await partitions.prepare(conn, now, days_ahead)

    async def droppable_partitions(self, cutoffs: Sequence[Cutoff]) -> list[HistoryPartition]:
        async with self._conn() as conn:
            return await partitions.droppable(conn, cutoffs)

    async def finished_runs_created(self, partition: HistoryPartition, limit: int) -> list[ExpiredRun]:
        async with self._conn() as conn:
            return await partitions.finished_runs_created(conn, partition, limit)

    async def drop_partition(self, partition: HistoryPartition) -> Removed:
        async with self._conn() as conn:
            return await partitions.drop(conn, partition)

    async def remove_resolved_dead_letters(self, resolved_before: float, limit: int) -> int:
        async with self._conn() as conn:
            return _count(await conn.execute(_REMOVE_RESOLVED_LETTERS, resolved_before, limit))

    async def forget_keys(self, now: float) -> int:
        async with self._conn() as conn:
            return _count(await conn.execute(_FORGET_KEYS, now))

    async def retired_key(self, key: str, now: float) -> tuple[str, float] | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(q.RETIRED_KEY, key, now)
        return None if row is None else (row["run_id"], row["expires_at"])

    async def retention_status(self, cutoffs: Sequence[Cutoff], now: float) -> RetentionStatus:
        expired: dict[str, int] = {}
        held = 0
        default = next((c for c in cutoffs if c.workflow is None), None)
        async with self._conn() as conn:
            for cutoff in cutoffs:
                if cutoff.workflow is None:
                    rows = await conn.fetch(_COUNT_OTHERS, _named(cutoffs), cutoff.finished_before)
                    for r in rows:
                        expired[r["workflow"]] = r["removable"]
                        held += r["held"]
                else:
                    one = await conn.fetchrow(_COUNT_OF, cutoff.workflow, cutoff.finished_before)
                    assert one is not None
                    expired[cutoff.workflow] = one["removable"]
                    held += one["held"]
            letters = 0
            if default is not None:
                letters = await conn.fetchval(_COUNT_RESOLVED_LETTERS, default.finished_before)
            keys = await conn.fetchrow(_KEY_COUNTS, now)
            oldest = await conn.fetchrow(_OLDEST)
        assert keys is not None
        assert oldest is not None
        return RetentionStatus(
            expired={w: n for w, n in expired.items() if n},
            kept_by_dead_letters=held,
            resolved_dead_letters=letters,
            expired_keys=keys["expired"],
            retired_keys=keys["kept"],
            oldest_run=oldest["run"],
            oldest_finished=oldest["finished"],
            oldest_history=oldest["history"],
        )

    async def take_maintenance_lease(self, name: str, holder: str, now: float, seconds: float) -> bool:
        async with self._conn() as conn:
            return await conn.fetchval(_TAKE_LEASE, name, holder, now + seconds, now) is not None

    async def release_maintenance_lease(self, name: str, holder: str) -> None:
        async with self._conn() as conn:
            await conn.execute(_RELEASE_LEASE, name, holder)
