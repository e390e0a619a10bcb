"""The Postgres store's leases role: step leases and their heartbeat timers,
each change one statement (docs/concepts.md, "Leases and heartbeats")."""

from __future__ import annotations

from legato.machine.vocabulary import TimerPurpose
from legato.store.base import LeaseDetails, LeaseEnd, LeaseGrant, heartbeat_timer_key
from legato.store.postgres.connection import PostgresConnection

ACQUIRE = """
WITH lease AS (
    INSERT INTO step_leases AS l (run_id, seq, attempt, holder, expires_at)
    VALUES ($1, $2, $3, $4, to_timestamp($6))
    ON CONFLICT (run_id, seq) DO UPDATE SET
        attempt = excluded.attempt, holder = excluded.holder, expires_at = excluded.expires_at
    WHERE l.attempt < excluded.attempt
        OR (l.holder IS NOT NULL AND l.expires_at <= to_timestamp($5))
    RETURNING l.details
), timer AS (
    INSERT INTO timers (run_id, key, purpose, seq, attempt, fire_at)
    SELECT $1, $7, $8, $2, $3, to_timestamp($6) FROM lease
    ON CONFLICT (run_id, key) DO UPDATE SET
        purpose = excluded.purpose, seq = excluded.seq, attempt = excluded.attempt,
        fire_at = excluded.fire_at, locked_until = NULL
)
SELECT true AS granted, details FROM lease
"""

RENEW = """
WITH lease AS (
    UPDATE step_leases SET
        expires_at = to_timestamp($6),
        details = CASE WHEN $7 THEN $8::jsonb ELSE details END,
        heartbeat_at = CASE WHEN $7 THEN to_timestamp($5) ELSE heartbeat_at END
    WHERE run_id = $1 AND seq = $2 AND attempt = $3 AND holder = $4 AND expires_at > to_timestamp($5)
    RETURNING 1
), timer AS (
    UPDATE timers SET fire_at = to_timestamp($6), locked_until = NULL
    WHERE run_id = $1 AND key = $9 AND EXISTS (SELECT 1 FROM lease)
)
SELECT count(*) FROM lease
"""

RELEASE_DONE = """
WITH lease AS (
    DELETE FROM step_leases WHERE run_id = $1 AND seq = $2 AND attempt = $3 AND holder = $4
    RETURNING 1
)
DELETE FROM timers WHERE run_id = $1 AND key = $5 AND attempt = $3 AND EXISTS (SELECT 1 FROM lease)
"""

RELEASE_FAILED = """
WITH lease AS (
    UPDATE step_leases SET holder = NULL, expires_at = to_timestamp($6)
    WHERE run_id = $1 AND seq = $2 AND attempt = $3 AND holder = $4
    RETURNING 1
)
DELETE FROM timers WHERE run_id = $1 AND key = $5 AND attempt = $3 AND EXISTS (SELECT 1 FROM lease)
"""

RELEASE_ABANDONED = """
WITH lease AS (
    UPDATE step_leases SET expires_at = to_timestamp($6)
    WHERE run_id = $1 AND seq = $2 AND attempt = $3 AND holder = $4
    RETURNING 1
)
UPDATE timers SET fire_at = to_timestamp($6), locked_until = NULL
WHERE run_id = $1 AND key = $5 AND attempt = $3 AND EXISTS (SELECT 1 FROM lease)
"""

EXPIRE = """
UPDATE step_leases SET holder = NULL
WHERE run_id = $1 AND seq = $2 AND attempt = $3 AND holder IS NOT NULL AND expires_at <= to_timestamp($4)
RETURNING 1
"""

DETAILS = "SELECT details FROM step_leases WHERE run_id = $1 AND seq = $2"

RELEASES = {LeaseEnd.FAILED: RELEASE_FAILED, LeaseEnd.ABANDONED: RELEASE_ABANDONED}


class PostgresLeases(PostgresConnection):
    async def acquire_lease(
        self, run_id: str, seq: int, attempt: int, holder: str, now: float, timeout: float
    ) -> LeaseGrant | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                ACQUIRE,
                run_id,
                seq,
                attempt,
                holder,
                now,
                now + timeout,
                heartbeat_timer_key(seq),
                TimerPurpose.HEARTBEAT,
            )
        return None if row is None else LeaseGrant(row["details"])

    async def renew_lease(
        self,
        run_id: str,
        seq: int,
        attempt: int,
        holder: str,
        now: float,
        timeout: float,
        details: LeaseDetails | None = None,
    ) -> bool:
        async with self._conn() as conn:
            renewed = await conn.fetchval(
                RENEW,
                run_id,
                seq,
                attempt,
                holder,
                now,
                now + timeout,
                details is not None,
                details,
                heartbeat_timer_key(seq),
            )
        return bool(renewed)

    async def release_lease(
        self, run_id: str, seq: int, attempt: int, holder: str, end: LeaseEnd, now: float
    ) -> None:
        args = (run_id, seq, attempt, holder, heartbeat_timer_key(seq))
        async with self._conn() as conn:
            if end is LeaseEnd.DONE:
                await conn.execute(RELEASE_DONE, *args)
            else:
                await conn.execute(RELEASES[end], *args, now)

    async def expire_lease(self, run_id: str, seq: int, attempt: int, now: float) -> bool:
        async with self._conn() as conn:
            taken = await conn.fetchval(EXPIRE, run_id, seq, attempt, now)
        return taken is not None

    async def lease_details(self, run_id: str, seq: int) -> LeaseDetails | None:
        async with self._conn() as conn:
            details: LeaseDetails | None = await conn.fetchval(DETAILS, run_id, seq)
        return details
