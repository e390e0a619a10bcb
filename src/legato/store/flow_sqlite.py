"""Flow-control state in SQLite: the same contract as Postgres.

Every call runs inside the store's write transaction (``BEGIN IMMEDIATE``),
so the read-compute-write of a bucket or a slot is never interleaved.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from legato.machine.limits import Bucket, full_at, reserve
from legato.store import sql_sqlite as q


async def reserve_tokens(
    db: aiosqlite.Connection, bucket: str, count: int, rate: float, capacity: float, now: float
) -> float:
    await db.execute(q.CREATE_BUCKET, (bucket, float(capacity), now, now))
    cursor = await db.execute(q.SELECT_BUCKET, (bucket,))
    row = await cursor.fetchone()
    assert row is not None
    state, valid_from = reserve(Bucket(row[0], row[1]), rate, capacity, now, count)
    await db.execute(q.UPDATE_BUCKET, (state.tokens, state.at, full_at(state, rate, capacity), bucket))
    return valid_from


async def acquire_slot(
    db: aiosqlite.Connection, bucket: str, limit: int, holder: str, now: float, lease: float
) -> int | None:
    cursor = await db.execute(q.LIVE_SLOTS, (bucket, now))
    live = {row[0] for row in await cursor.fetchall()}
    if len(live) >= limit:
        return None
    slot = min(s for s in range(limit) if s not in live)
    await db.execute(q.UPSERT_SLOT, (bucket, slot, holder, lease, now, now + lease))
    return slot


async def release_slot(db: aiosqlite.Connection, bucket: str, slot: int, holder: str) -> None:
    await db.execute(q.RELEASE_SLOT, (bucket, slot, holder))


async def renew_slots(
    db: aiosqlite.Connection, holder: str, slots: Sequence[tuple[str, int]], now: float
) -> list[tuple[str, int]]:
    held = []
    for bucket, slot in slots:
        cursor = await db.execute(q.RENEW_SLOT, (now, bucket, slot, holder))
        if cursor.rowcount == 1:
            held.append((bucket, slot))
    return held


async def purge_flow_state(db: aiosqlite.Connection, now: float) -> int:
    buckets = await db.execute(q.PURGE_BUCKETS, (now,))
    slots = await db.execute(q.PURGE_SLOTS, (now,))
    return buckets.rowcount + slots.rowcount
