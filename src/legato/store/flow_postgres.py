"""Flow-control state in Postgres: global token buckets and slot leases.

The bucket arithmetic is the pure core's (:mod:`legato.machine.limits`); a
reservation locks the bucket's row for the read-compute-write, so every
worker sees one consistent bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from legato.machine.limits import Bucket, full_at, reserve
from legato.store import sql_postgres as q

if TYPE_CHECKING:
    from legato.store.postgres_rows import Conn


async def reserve_tokens(
    conn: Conn, bucket: str, count: int, rate: float, capacity: float, now: float
) -> float:
    async with conn.transaction():
        row = await conn.fetchrow(q.LOCK_BUCKET, bucket, float(capacity), now)
        assert row is not None
        state, valid_from = reserve(Bucket(row["tokens"], row["updated_at"]), rate, capacity, now, count)
        await conn.execute(q.UPDATE_BUCKET, bucket, state.tokens, state.at, full_at(state, rate, capacity))
    return valid_from


async def acquire_slot(
    conn: Conn, bucket: str, limit: int, holder: str, now: float, lease: float
) -> int | None:
    slot: int | None = await conn.fetchval(q.ACQUIRE_SLOT, bucket, limit, holder, now, now + lease, lease)
    return slot


async def release_slot(conn: Conn, bucket: str, slot: int, holder: str) -> None:
    await conn.execute(q.RELEASE_SLOT, bucket, slot, holder)


async def renew_slots(
    conn: Conn, holder: str, slots: Sequence[tuple[str, int]], now: float
) -> list[tuple[str, int]]:
    if not slots:
        return []
    rows = await conn.fetch(q.RENEW_SLOTS, holder, now, [b for b, _ in slots], [s for _, s in slots])
    return [(r["bucket"], r["slot"]) for r in rows]


async def slots_in_use(conn: Conn, bucket: str, now: float) -> tuple[int, float | None]:
    row = await conn.fetchrow(q.SLOTS_IN_USE, bucket, now)
    assert row is not None
    return int(row["used"]), row["soonest"]


async def purge_flow_state(conn: Conn, now: float) -> int:
    buckets = await conn.execute(q.PURGE_BUCKETS, now)
    slots = await conn.execute(q.PURGE_SLOTS, now)
    return int(buckets.split()[-1]) + int(slots.split()[-1])
