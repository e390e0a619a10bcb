"""Flow-control state in SQLite: the same contract as Postgres.

Every call runs inside the store's write transaction (``BEGIN IMMEDIATE``),
so the read-compute-write of a bucket or a slot is never interleaved.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from legato.machine.limits import Bucket, full_at, reserve
from legato.store.sqlite import sql as q
from legato.store.sqlite.connection import SqliteConnection


async def _reserve_tokens(
    db: aiosqlite.Connection, bucket: str, count: int, rate: float, capacity: float, now: float
) -> float:
    await db.execute(q.CREATE_BUCKET, (bucket, float(capacity), now, now))
    cursor = await db.execute(q.SELECT_BUCKET, (bucket,))
    row = await cursor.fetchone()
    assert row is not None
    state, valid_from = reserve(Bucket(row[0], row[1]), rate, capacity, now, count)
    await db.execute(q.UPDATE_BUCKET, (state.tokens, state.at, full_at(state, rate, capacity), bucket))
    return valid_from


async def _acquire_slot(
    db: aiosqlite.Connection, bucket: str, limit: int, holder: str, now: float, lease: float
) -> int | None:
    cursor = await db.execute(q.LIVE_SLOTS, (bucket, now))
    live = {row[0] for row in await cursor.fetchall()}
    if len(live) >= limit:
        return None
    slot = min(s for s in range(limit) if s not in live)
    await db.execute(q.UPSERT_SLOT, (bucket, slot, holder, lease, now, now + lease))
    return slot


async def _release_slot(db: aiosqlite.Connection, bucket: str, slot: int, holder: str) -> None:
    await db.execute(q.RELEASE_SLOT, (bucket, slot, holder))


async def _renew_slots(
    db: aiosqlite.Connection, holder: str, slots: Sequence[tuple[str, int]], now: float
) -> list[tuple[str, int]]:
    held = []
    for bucket, slot in slots:
        cursor = await db.execute(q.RENEW_SLOT, (now, bucket, slot, holder))
        if cursor.rowcount == 1:
            held.append((bucket, slot))
    return held


async def _purge_flow_state(db: aiosqlite.Connection, now: float) -> int:
    buckets = await db.execute(q.PURGE_BUCKETS, (now,))
    slots = await db.execute(q.PURGE_SLOTS, (now,))
    return buckets.rowcount + slots.rowcount


class SqliteFlow(SqliteConnection):
    """The flow role: each call one write transaction."""

    async def reserve_tokens(
        self, bucket: str, count: int, rate: float, capacity: float, now: float
    ) -> float:
        async with self._write() as db:
            return await _reserve_tokens(db, bucket, count, rate, capacity, now)

    async def acquire_slot(
        self, bucket: str, limit: int, holder: str, now: float, lease: float
    ) -> int | None:
        async with self._write() as db:
            return await _acquire_slot(db, bucket, limit, holder, now, lease)

    async def release_slot(self, bucket: str, slot: int, holder: str) -> None:
        async with self._write() as db:
            await _release_slot(db, bucket, slot, holder)

    async def renew_slots(
        self, holder: str, slots: Sequence[tuple[str, int]], now: float
    ) -> list[tuple[str, int]]:
        async with self._write() as db:
            return await _renew_slots(db, holder, slots, now)

    async def slots_in_use(self, bucket: str, now: float) -> tuple[int, float | None]:
        rows = await self._read(q.SLOTS_IN_USE, bucket, now)
        return int(rows[0][0]), rows[0][1]

    async def purge_flow_state(self, now: float) -> int:
        async with self._write() as db:
            return await _purge_flow_state(db, now)
