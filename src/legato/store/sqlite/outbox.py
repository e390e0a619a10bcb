"""The SQLite store's outbox role."""

from __future__ import annotations

from collections.abc import Sequence

from legato.store.base import OutboxMessage
from legato.store.sqlite import sql as q
from legato.store.sqlite.connection import SqliteConnection, loads


class SqliteOutbox(SqliteConnection):
    async def claim_outbox(
        self, older_than: float, now: float, lease: float, limit: int
    ) -> list[OutboxMessage]:
        async with self._write() as db:
            cursor = await db.execute(q.CLAIM_OUTBOX, (now + lease, older_than, now, limit))
            rows = await cursor.fetchall()
        return [
            OutboxMessage(
                r["id"],
                r["run_id"],
                r["kind"],
                bytes(r["body"]),
                r["priority"],
                loads(r["headers"]),
            )
            for r in rows
        ]

    async def outbox_done(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        async with self._write() as db:
            await db.executemany(q.DELETE_OUTBOX, [(i,) for i in ids])

    async def claim_outbox_rows(self, ids: Sequence[int], until: float) -> None:
        if ids:
            async with self._write() as db:
                await db.executemany(q.CLAIM_OUTBOX_ROW, [(until, i) for i in ids])

    async def flush_outbox(self) -> None:
        return None  # deletions are immediate here
