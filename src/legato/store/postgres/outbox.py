"""The Postgres store's outbox role."""

from __future__ import annotations

from collections.abc import Sequence

from legato.store.base import OutboxMessage
from legato.store.postgres import sql as q
from legato.store.postgres.connection import PostgresConnection
from legato.store.postgres.rows import outbox_from_row


class PostgresOutbox(PostgresConnection):
    async def claim_outbox(
        self, older_than: float, now: float, lease: float, limit: int
    ) -> list[OutboxMessage]:
        await self.flush_outbox()  # never hand out what this process already published
        async with self._conn() as conn:
            rows = await conn.fetch(q.CLAIM_OUTBOX, older_than, now, now + lease, limit)
        return [outbox_from_row(r) for r in rows]

    async def outbox_done(self, ids: Sequence[int]) -> None:
        """Forget published outbox rows (deferred: see :class:`GroupCommit`)."""
        await self._batch.forget(ids)

    async def claim_outbox_rows(self, ids: Sequence[int], until: float) -> None:
        if ids:
            async with self._conn() as conn:
                await conn.execute(q.CLAIM_OUTBOX_ROWS, list(ids), until)

    async def flush_outbox(self) -> None:
        await self._batch.flush_outbox()
