"""The Postgres store's dead-letters role (step dead letters are written with
their transition: store/postgres/write.py)."""

from __future__ import annotations

from legato.machine.vocabulary import DeadLetterStatus
from legato.store.base import DeadLetterGroup, DeadLetterRecord, PoisonMessage
from legato.store.postgres import sql as q
from legato.store.postgres.connection import PostgresConnection
from legato.store.postgres.rows import dead_letter_from_row
from legato.store.rows import dead_letter_groups, poison_row


class PostgresDeadLetters(PostgresConnection):
    async def record_poison(self, poison: PoisonMessage, at: float) -> int:
        reason, *columns = poison_row(poison)
        async with self._conn() as conn:
            dead_letter_id: int = await conn.fetchval(q.INSERT_POISON, reason, at, *columns)
        return dead_letter_id

    async def list_dead_letters(
        self, workflow: str | None = None, status: str | None = "open", limit: int = 100, *, offset: int = 0
    ) -> list[DeadLetterRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(q.LIST_DEAD_LETTERS, workflow, status, limit, offset)
        return [dead_letter_from_row(r) for r in rows]

    async def count_dead_letters(
        self, workflow: str | None = None, status: str | None = "open", older_than: float | None = None
    ) -> int:
        async with self._conn() as conn:
            found: int = await conn.fetchval(q.COUNT_DEAD_LETTERS, workflow, status, older_than)
        return found

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(q.GET_DEAD_LETTER, dead_letter_id)
        return dead_letter_from_row(row) if row is not None else None

    async def group_dead_letters(
        self, by: str, workflow: str | None = None, status: str | None = "open"
    ) -> list[DeadLetterGroup]:
        column, detail = q.DEAD_LETTER_GROUP_COLUMNS[by]
        async with self._conn() as conn:
            rows = await conn.fetch(
                q.GROUP_DEAD_LETTERS.format(column=column, detail=detail), workflow, status
            )
        return dead_letter_groups(rows, by)

    async def resolve_dead_letter(
        self,
        dead_letter_id: int,
        actor: str,
        at: float,
        status: DeadLetterStatus = DeadLetterStatus.REPLAYED,
    ) -> bool:
        async with self._conn() as conn:
            return await conn.fetchval(q.RESOLVE_DEAD_LETTER, dead_letter_id, at, actor, status) is not None

    async def reopen_dead_letter(self, dead_letter_id: int) -> None:
        async with self._conn() as conn:
            await conn.execute(q.REOPEN_DEAD_LETTER, dead_letter_id)

    async def purge_dead_letters(self, older_than: float | None) -> int:
        async with self._conn() as conn:
            status = await conn.execute(q.PURGE_DEAD_LETTERS, older_than)
        return int(status.split()[-1])
