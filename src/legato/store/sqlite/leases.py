"""The SQLite store's leases role: the Postgres semantics, a few statements in
one write transaction each."""

from __future__ import annotations

from legato.machine.vocabulary import TimerPurpose
from legato.store.base import LeaseDetails, LeaseEnd, LeaseGrant, heartbeat_timer_key
from legato.store.sqlite.connection import SqliteConnection, dumps, loads

TAKE = """
INSERT INTO step_leases AS l (run_id, seq, attempt, holder, expires_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (run_id, seq) DO UPDATE SET
    attempt = excluded.attempt, holder = excluded.holder, expires_at = excluded.expires_at
WHERE l.attempt < excluded.attempt OR (l.holder IS NOT NULL AND l.expires_at <= ?)
"""
ARM = """
INSERT INTO timers (run_id, key, purpose, seq, attempt, fire_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, key) DO UPDATE SET
    purpose = excluded.purpose, seq = excluded.seq, attempt = excluded.attempt,
    fire_at = excluded.fire_at, locked_until = NULL
"""
RENEW = """
UPDATE step_leases SET
    expires_at = ?,
    details = CASE WHEN ? THEN ? ELSE details END,
    heartbeat_at = CASE WHEN ? THEN ? ELSE heartbeat_at END
WHERE run_id = ? AND seq = ? AND attempt = ? AND holder = ? AND expires_at > ?
"""
MOVE_TIMER = "UPDATE timers SET fire_at = ?, locked_until = NULL WHERE run_id = ? AND key = ? AND attempt = ?"
DROP_TIMER = "DELETE FROM timers WHERE run_id = ? AND key = ? AND attempt = ?"
OWNED = "run_id = ? AND seq = ? AND attempt = ? AND holder = ?"


class SqliteLeases(SqliteConnection):
    async def acquire_lease(
        self, run_id: str, seq: int, attempt: int, holder: str, now: float, timeout: float
    ) -> LeaseGrant | None:
        expires = now + timeout
        async with self._write() as db:
            cursor = await db.execute(TAKE, (run_id, seq, attempt, holder, expires, now))
            if cursor.rowcount != 1:
                return None
            await db.execute(
                ARM, (run_id, heartbeat_timer_key(seq), TimerPurpose.HEARTBEAT, seq, attempt, expires)
            )
            cursor = await db.execute(
                "SELECT details FROM step_leases WHERE run_id = ? AND seq = ?", (run_id, seq)
            )
            row = await cursor.fetchone()
        return LeaseGrant(loads(row[0]) if row is not None else None)

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
        expires = now + timeout
        given = details is not None
        async with self._write() as db:
            cursor = await db.execute(
                RENEW, (expires, given, dumps(details), given, now, run_id, seq, attempt, holder, now)
            )
            if cursor.rowcount != 1:
                return False
            await db.execute(MOVE_TIMER, (expires, run_id, heartbeat_timer_key(seq), attempt))
        return True

    async def release_lease(
        self, run_id: str, seq: int, attempt: int, holder: str, end: LeaseEnd, now: float
    ) -> None:
        owned = (run_id, seq, attempt, holder)
        timer = (run_id, heartbeat_timer_key(seq), attempt)
        async with self._write() as db:
            match end:
                case LeaseEnd.DONE:
                    cursor = await db.execute(f"DELETE FROM step_leases WHERE {OWNED}", owned)
                case LeaseEnd.FAILED:
                    cursor = await db.execute(
                        f"UPDATE step_leases SET holder = NULL, expires_at = ? WHERE {OWNED}", (now, *owned)
                    )
                case LeaseEnd.ABANDONED:
                    cursor = await db.execute(
                        f"UPDATE step_leases SET expires_at = ? WHERE {OWNED}", (now, *owned)
                    )
            if cursor.rowcount != 1:
                return
            if end is LeaseEnd.ABANDONED:
                await db.execute(MOVE_TIMER, (now, *timer))
            else:
                await db.execute(DROP_TIMER, timer)

    async def expire_lease(self, run_id: str, seq: int, attempt: int, now: float) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE step_leases SET holder = NULL WHERE run_id = ? AND seq = ? AND attempt = ? "
                "AND holder IS NOT NULL AND expires_at <= ?",
                (run_id, seq, attempt, now),
            )
            return cursor.rowcount == 1

    async def lease_details(self, run_id: str, seq: int) -> LeaseDetails | None:
        rows = await self._read("SELECT details FROM step_leases WHERE run_id = ? AND seq = ?", run_id, seq)
        details: LeaseDetails | None = loads(rows[0][0]) if rows else None
        return details
