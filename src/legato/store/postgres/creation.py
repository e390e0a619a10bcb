"""Group creation: many new runs in one transaction.

Events arrive in bursts, and each one starts a run. Created one by one, a run
costs a transaction of four statements (insert, retired-key check, history and
outbox rows, commit) -- most of a worker's database time on the event path.
Created together, a burst costs the same four statements. Like the group
commit (batching.py), there is no timer and no delay: whoever holds the lock
creates everything queued so far, and an idle worker still creates each run at
once, by the one-run path.

Only runs whose first transition the group commit could carry (history and
task messages: no timers, dead letters or map items) come here; the others,
and any batch that meets a retired key or a value the database refuses, take
the one-run path, so that exactly the right calls fail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import asyncpg

from legato.machine.run import Run
from legato.store.base import Created
from legato.store.postgres import sql as q
from legato.store.postgres.batching import reraise, take_turn
from legato.store.postgres.rows import run_from_row, stored_columns
from legato.store.postgres.write import Write, write_batch

if TYPE_CHECKING:
    from legato.store.postgres.rows import Conn

_BATCH_MAX = 256
"""Runs per transaction; beyond it, the rest go in the next one."""


@dataclass(eq=False)
class _NewRun:
    write: Write
    result: Created | BaseException | None = None


class _OneByOne(Exception):
    """A batch met a retired key: it is rolled back and created run by run."""


class GroupCreate:
    def __init__(
        self,
        connect: Callable[[], AbstractAsyncContextManager[Conn]],
        one: Callable[[Write], Awaitable[Created]],
    ) -> None:
        self._connect = connect
        self._one = one
        self._queue: list[_NewRun] = []
        self._lock = anyio.Lock(fast_acquire=True)

    async def create(self, write: Write) -> Created:
        """Create the run of ``write`` (its effects must allow group commit)."""
        pending = _NewRun(write)
        await take_turn(pending, self._queue, self._lock, self._flush_next)
        result = pending.result
        reraise(result)
        assert isinstance(result, Created)
        return result

    async def _flush_next(self) -> None:
        batch = self._queue[:_BATCH_MAX]
        del self._queue[:_BATCH_MAX]  # in place: waiters hold this list (take_turn)
        await self._flush(batch)

    async def _flush(self, batch: list[_NewRun]) -> None:
        """Create ``batch`` and give each pending run its result; never raises."""
        if len(batch) > 1:
            try:
                await self._commit(batch)
                return
            except (_OneByOne, asyncpg.PostgresError):
                pass  # rolled back: each alone, so that only the culprit fails
            except Exception as exc:
                for pending in batch:
                    pending.result = exc
                return
        for pending in batch:
            try:
                pending.result = await self._one(pending.write)
            except Exception as exc:
                pending.result = exc

    async def _commit(self, batch: list[_NewRun]) -> None:
        # In key order, so that two batches sharing keys wait on each other
        # instead of deadlocking.
        batch.sort(key=lambda p: p.write.decision.run.idempotency_key or "")
        runs = [p.write.decision.run for p in batch]
        async with self._connect() as conn, conn.transaction():
            rows = await conn.fetch(q.INSERT_RUNS, [stored_columns(r) for r in runs])
            inserted = {row["id"] for row in rows}
            keyed = [r for r in runs if r.id in inserted and r.idempotency_key is not None]
            # After the insert, as on the one-run path: a retention pass that
            # removed a key's run has committed its retired key by now.
            if keyed and await conn.fetchval(
                q.ANY_RETIRED_KEY, [r.idempotency_key for r in keyed], [r.created_at for r in keyed]
            ):
                raise _OneByOne
            new = [p.write for p in batch if p.write.decision.run.id in inserted]
            written = await write_batch(conn, new, new=True)
            taken = [r.idempotency_key for r in runs if r.id not in inserted]
            existing: dict[str | None, Run] = {}
            if taken:
                existing = {
                    row["idempotency_key"]: run_from_row(row)
                    for row in await conn.fetch(q.SELECT_RUNS_BY_KEYS, taken)
                }
        for pending, run in zip(batch, runs, strict=True):
            if run.id in inserted:
                pending.result = Created(run, True, tuple(written.outbox.get(run.id, ())))
            else:
                pending.result = Created(existing[run.idempotency_key], False, ())
