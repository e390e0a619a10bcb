"""The Postgres store's completion tokens (machine/completion.py): the lookup by
digest that completing a token starts with. The rows are written by the
transitions, in their transaction (:func:`legato.store.postgres.write.write_completions`)."""

from __future__ import annotations

from legato.machine.vocabulary import CompletionOutcome
from legato.store.base import CompletionRecord
from legato.store.postgres.connection import PostgresConnection

FIND = """
SELECT run_id::text, seq, attempt, state, created_at, expires_at, settled_at, outcome, settled_by
FROM completion_tokens WHERE digest = $1
"""


class PostgresCompletions(PostgresConnection):
    async def find_completion(self, digest: str) -> CompletionRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(FIND, digest)
        if row is None:
            return None
        return CompletionRecord(
            run_id=row["run_id"],
            seq=row["seq"],
            attempt=row["attempt"],
            state=row["state"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            settled_at=row["settled_at"],
            outcome=CompletionOutcome(row["outcome"]) if row["outcome"] else None,
            settled_by=row["settled_by"],
        )
