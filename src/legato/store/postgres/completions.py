"""The Postgres store's completion tokens (machine/completion.py): the rows the
transitions write (:func:`write_completions`, in their transaction) and the
lookup by digest that completing a token starts with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from legato.machine.run import Run
from legato.machine.vocabulary import CompletionOutcome
from legato.store.base import CompletionRecord
from legato.store.effects import Effects
from legato.store.postgres.connection import PostgresConnection

if TYPE_CHECKING:
    from legato.store.postgres.rows import Conn

INSERT = """
INSERT INTO completion_tokens (digest, run_id, seq, attempt, state, created_at, expires_at)
SELECT u.digest, $1, u.seq, u.attempt, u.state, $2, u.expires_at
FROM unnest($3::text[], $4::integer[], $5::integer[], $6::text[], $7::timestamptz[])
     AS u (digest, seq, attempt, state, expires_at)
"""
SETTLE = """
UPDATE completion_tokens SET settled_at = $4, outcome = $5, settled_by = $6
WHERE run_id = $1 AND seq = $2 AND attempt = $3 AND settled_at IS NULL
"""
FIND = """
SELECT run_id::text, seq, attempt, state, created_at, expires_at, settled_at, outcome, settled_by
FROM completion_tokens WHERE digest = $1
"""


async def write_completions(conn: Conn, run: Run, found: Effects) -> None:
    """The decision's completion tokens: new ones recorded, used ones settled."""
    if found.awaits:
        awaits = found.awaits
        await conn.execute(
            INSERT,
            run.id,
            run.updated_at,
            [a.digest for a in awaits],
            [a.seq for a in awaits],
            [a.attempt for a in awaits],
            [a.state for a in awaits],
            [a.expires_at for a in awaits],
        )
    for settle in found.settles:
        await conn.execute(
            SETTLE, run.id, settle.seq, settle.attempt, run.updated_at, settle.outcome.value, settle.actor
        )


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
