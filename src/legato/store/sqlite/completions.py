"""The SQLite store's completion tokens: the Postgres semantics
(:mod:`legato.store.postgres.completions`)."""

from __future__ import annotations

import aiosqlite

from legato.machine.run import Run
from legato.machine.vocabulary import CompletionOutcome
from legato.store.base import CompletionRecord
from legato.store.effects import Effects
from legato.store.sqlite.connection import SqliteConnection

INSERT = """
INSERT INTO completion_tokens (digest, run_id, seq, attempt, state, created_at, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
SETTLE = """
UPDATE completion_tokens SET settled_at = ?, outcome = ?, settled_by = ?
WHERE run_id = ? AND seq = ? AND attempt = ? AND settled_at IS NULL
"""
FIND = """
SELECT run_id, seq, attempt, state, created_at, expires_at, settled_at, outcome, settled_by
FROM completion_tokens WHERE digest = ?
"""


async def write_completions(db: aiosqlite.Connection, run: Run, found: Effects) -> None:
    """The decision's completion tokens: new ones recorded, used ones settled."""
    await db.executemany(
        INSERT,
        [(a.digest, run.id, a.seq, a.attempt, a.state, run.updated_at, a.expires_at) for a in found.awaits],
    )
    await db.executemany(
        SETTLE,
        [(run.updated_at, s.outcome.value, s.actor, run.id, s.seq, s.attempt) for s in found.settles],
    )


class SqliteCompletions(SqliteConnection):
    async def find_completion(self, digest: str) -> CompletionRecord | None:
        rows = await self._read(FIND, digest)
        if not rows:
            return None
        run_id, seq, attempt, state, created_at, expires_at, settled_at, outcome, settled_by = rows[0]
        return CompletionRecord(
            run_id=run_id,
            seq=seq,
            attempt=attempt,
            state=state,
            created_at=created_at,
            expires_at=expires_at,
            settled_at=settled_at,
            outcome=CompletionOutcome(outcome) if outcome else None,
            settled_by=settled_by,
        )
