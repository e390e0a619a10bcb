"""Flow-control state in Postgres: global token buckets and slot leases.

The bucket arithmetic is the pure core's (:mod:`legato.machine.limits`); a
reservation locks the bucket's row for the read-compute-write, so every
worker sees one consistent bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from legato.machine.limits import Bucket, full_at, reserve
from legato.store.postgres import sql as q
from legato.store.postgres.connection import PostgresConnection

if TYPE_CHECKING:
    from legato.store.postgres.rows import Conn


async def _reserve_tokens(
    conn: Conn, bucket: str, count: int, rate: float, capacity: float, now: float
) -> float:
    async with conn.transaction():
        row = await conn.fetchrow(q.LOCK_BUCKET, bucket, float(capacity), now)
        assert row is not None
        state, valid_from = reserve(Bucket(row["tokens"], row["updated_at"]), rate, capacity, now, count)
        await conn.execute(q.UPDATE_BUCKET, bucket, state.tokens, state.at, full_at(state, rate, capacity))
    return valid_from


async def _acquire_slot(
    conn: Conn, bucket: str, limit: int, holder: str, now: float, lease: float
) -> int | None:
    slot: int | None = await conn.fetchval(q.ACQUIRE_SLOT, bucket, limit, holder, now, now + lease, lease)
    return slot


async def _release_slot(conn: Conn, bucket: str, slot: int, holder: str) -> None:
    await conn.execute(q.RELEASE_SLOT, bucket, slot, holder)


async def _renew_slots(
    conn: Conn, holder: str, slots: Sequence[tuple[str, int]], now: float
) -> list[tuple[str, int]]:
    if not slots:
        return []
    rows = await conn.fetch(q.RENEW_SLOTS, holder, now, [b for b, _ in slots], [s for _, s in slots])
    return [(r["bucket"], r["slot"]) for r in rows]


async def _slots_in_use(conn: Conn, bucket: str, now: float) -> tuple[int, float | None]:
    row = await conn.fetchrow(q.SLOTS_IN_USE, bucket, now)
    assert row is not None
    return int(row["used"]), row["soonest"]


async def _purge_flow_state(conn: Conn, now: float) -> int:
    buckets = await conn.execute(q.PURGE_BUCKETS, now)
    slots = await conn.execute(q.PURGE_SLOTS, now)
    return int(buckets.split()[-1]) + int(slots.split()[-1])


class PostgresFlow(PostgresConnection):
    """The flow role: each call one short transaction on a pooled connection."""

    async def reserve_tokens(
        self, bucket: str, count: int, rate: float, capacity: float, now: float
    ) -> float:
        async with self._conn() as conn:
            return await _reserve_tokens(conn, bucket, count, rate, capacity, now)

    async def acquire_slot(
        self, bucket: str, limit: int, holder: str, now: float, lease: float
    ) -> int | None:
        async with self._conn() as conn:
            return await _acquire_slot(conn, bucket, limit, holder, now, lease)

    async def release_slot(self, bucket: str, slot: int, holder: str) -> None:
        async with self._conn() as conn:
            await _release_slot(conn, bucket, slot, holder)

    async def renew_slots(
        self, holder: str, slots: Sequence[tuple[str, int]], now: float
    ) -> list[tuple[str, int]]:
        async with self._conn() as conn:
            return await _renew_slots(conn, holder, slots, now)

    async def slots_in_use(self, bucket: str, now: float) -> tuple[int, float | None]:
        async with self._conn() as conn:
            return await _slots_in_use(conn, bucket, now)

    async def purge_flow_state(self, now: float) -> int:
        async with self._conn() as conn:
            return await _purge_flow_state(conn, now)
