"""The SQLite store's dead-letters role (step dead letters are written with
their transition: :mod:`legato.store.sqlite.runs`)."""

from __future__ import annotations

from legato.machine.vocabulary import DeadLetterStatus
from legato.store.base import DeadLetterGroup, DeadLetterRecord, PoisonMessage
from legato.store.rows import Row, dead_letter_from_columns, dead_letter_groups, poison_row
from legato.store.sqlite import sql as q
from legato.store.sqlite.connection import SqliteConnection, dumps, loads


class SqliteDeadLetters(SqliteConnection):
    async def record_poison(self, poison: PoisonMessage, at: float) -> int:
        reason, message, *columns = poison_row(poison)
        async with self._write() as db:
            await db.execute(q.INSERT_POISON, (reason, at, dumps(message), *columns))
            cursor = await db.execute(q.POISON_BY_FINGERPRINT, (poison.fingerprint,))
            row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def list_dead_letters(
        self, workflow: str | None = None, status: str | None = "open", limit: int = 100, *, offset: int = 0
    ) -> list[DeadLetterRecord]:
        rows = await self._read(q.LIST_DEAD_LETTERS, workflow, workflow, status, status, limit, offset)
        return [_dead_letter(r) for r in rows]

    async def count_dead_letters(
        self, workflow: str | None = None, status: str | None = "open", older_than: float | None = None
    ) -> int:
        rows = await self._read(q.COUNT_DEAD_LETTERS, workflow, status, older_than)
        return int(rows[0][0])

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None:
        rows = await self._read(q.GET_DEAD_LETTER, dead_letter_id)
        return _dead_letter(rows[0]) if rows else None

    async def group_dead_letters(
        self, by: str, workflow: str | None = None, status: str | None = "open"
    ) -> list[DeadLetterGroup]:
        column, detail = q.DEAD_LETTER_GROUP_COLUMNS[by]
        rows = await self._read(
            q.GROUP_DEAD_LETTERS.format(column=column, detail=detail), workflow, workflow, status, status
        )
        return dead_letter_groups(rows, by)

    async def resolve_dead_letter(
        self,
        dead_letter_id: int,
        actor: str,
        at: float,
        status: DeadLetterStatus = DeadLetterStatus.REPLAYED,
    ) -> bool:
        async with self._write() as db:
            cursor = await db.execute(q.RESOLVE_DEAD_LETTER, (status, at, actor, dead_letter_id))
            return cursor.rowcount == 1

    async def reopen_dead_letter(self, dead_letter_id: int) -> None:
        async with self._write() as db:
            await db.execute(q.REOPEN_DEAD_LETTER, (dead_letter_id,))

    async def purge_dead_letters(self, older_than: float | None) -> int:
        async with self._write() as db:
            cursor = await db.execute(q.PURGE_DEAD_LETTERS, (older_than,))
            return cursor.rowcount


def _dead_letter(row: Row) -> DeadLetterRecord:
    return dead_letter_from_columns(row, loads)
