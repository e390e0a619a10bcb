"""Statements shared by concurrent callers: group commit and batched reads.

Many steps finish at once on a busy worker. Instead of a round trip and a
commit each, their transitions are queued and whoever holds the flush lock
commits everything queued so far in one statement (``APPLY_BATCH``); reads of
runs are batched the same way. There is no timer and no delay: an idle worker
still commits each transition at once, a busy one many per round trip.
Deletions of published outbox rows ride along with the next statement.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import anyio
import asyncpg

from legato.errors import StoreError
from legato.machine.commands import Decision
from legato.machine.run import Run
from legato.store.base import Applied, Conflict
from legato.store.effects import Effects
from legato.store.postgres import sql as q
from legato.store.postgres.rows import run_from_row
from legato.store.postgres.write import Write, write_batch
from legato.store.rows import canonical_run_id

if TYPE_CHECKING:
    from legato.store.postgres.rows import Conn

_SENT_FLUSH_AT = 1000
"""Published outbox ids kept for the next statement before a flush of their own."""


@dataclass(eq=False)
class _Load:
    run_id: str
    run: Run | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass(eq=False)
class _Pending:
    write: Write
    result: Applied | Conflict | BaseException | None = None


_BATCH_MAX = 256
"""Transitions per group commit; beyond it, the rest go in the next statement."""


class _Queued(Protocol):
    @property
    def result(self) -> object: ...


Q = TypeVar("Q", bound=_Queued)


async def take_turn(
    pending: Q, queue: list[Q], lock: anyio.Lock, flush_next: Callable[[], Awaitable[None]]
) -> None:
    """Queue ``pending`` until it has its result: whoever holds ``lock`` flushes a
    batch of what is queued (``flush_next`` takes it from ``queue``, in place).
    No timer and no delay: while one batch is written, the next one queues up."""
    queue.append(pending)
    try:
        async with lock:
            if pending.result is None:
                with anyio.CancelScope(shield=True):  # others wait on this batch
                    await flush_next()
    except BaseException:
        if pending in queue:
            queue.remove(pending)
        raise


def reraise(result: object) -> None:
    """Raise the error a flush gave one waiter, if it gave one."""
    if isinstance(result, StoreError):
        raise StoreError(str(result)) from result  # one exception object per waiter
    if isinstance(result, BaseException):
        raise result


class GroupCommit:
    def __init__(self, connect: Callable[[], AbstractAsyncContextManager[Conn]]) -> None:
        self._connect = connect
        self._sent: list[int] = []
        self._queue: list[_Pending] = []
        self._flush_lock = anyio.Lock(fast_acquire=True)
        self._loads: list[_Load] = []
        self._load_lock = anyio.Lock(fast_acquire=True)

    @property
    def unsent_deletions(self) -> bool:
        return bool(self._sent)

    async def load(self, run_id: str) -> Run | None:
        """Read a run; reads made at the same moment share one statement
        (the same flush-lock pattern as the group commit)."""
        canonical = canonical_run_id(run_id)  # the spelling the rows come back in
        if canonical is None:
            return None  # not a uuid: no such run (and it must not spoil a batch)
        run_id = canonical
        pending = _Load(run_id)
        self._loads.append(pending)
        try:
            async with self._load_lock:
                if not pending.done:
                    batch, self._loads = self._loads[:_BATCH_MAX], self._loads[_BATCH_MAX:]
                    with anyio.CancelScope(shield=True):  # others wait on this batch
                        await self._read_runs(batch)
        except BaseException:
            if pending in self._loads:
                self._loads.remove(pending)
            raise
        if pending.error is not None:
            raise StoreError(str(pending.error)) from pending.error  # one exception object per waiter
        return pending.run

    async def _read_runs(self, batch: list[_Load]) -> None:
        try:
            async with self._connect() as conn:
                rows = await conn.fetch(q.SELECT_RUNS, list({p.run_id for p in batch}))
        except BaseException as exc:
            for pending in batch:
                pending.error, pending.done = exc, True
            raise
        # Decoded once per run: the branches of a parallel state read their run together.
        found = {row["id"]: run_from_row(row) for row in rows}
        for pending in batch:
            pending.run = found.get(pending.run_id)
            pending.done = True

    async def apply(
        self, decision: Decision, effects: Effects, headers: Mapping[str, str] | None
    ) -> Applied | Conflict:
        """The common transition, group-committed with those of other steps.

        Only a decision whose ``effects.group_commit`` holds: the statement
        writes runs, history and task outbox rows, nothing else.

        No timer and no delay: whoever holds the flush lock commits everything
        queued so far in one statement. While that statement runs, new
        transitions queue up and go together in the next one, so a busy worker
        commits many per round trip and an idle one still commits each at once.
        """
        if not effects.group_commit:
            raise ValueError("group commit cannot carry these effects (timers or dead letters)")
        pending = _Pending(Write(decision, effects, headers))
        await take_turn(pending, self._queue, self._flush_lock, lambda: self._flush(self._take_batch()))
        result = pending.result
        reraise(result)
        assert isinstance(result, (Applied, Conflict))
        return result

    def _take_batch(self) -> list[_Pending]:
        """Queued transitions, oldest first, at most one per run: a second
        decision on a run waits for the next batch, where it meets a conflict
        and is decided again."""
        batch: list[_Pending] = []
        seen: set[str] = set()
        left: list[_Pending] = []
        for pending in self._queue:
            run_id = pending.write.decision.run.id
            if run_id in seen or len(batch) >= _BATCH_MAX:
                left.append(pending)
            else:
                seen.add(run_id)
                batch.append(pending)
        self._queue[:] = left  # in place: waiters hold this list (take_turn)
        return batch

    async def _flush(self, batch: list[_Pending]) -> None:
        """Commit ``batch`` and give each pending transition its result; never raises."""
        try:
            await self._commit(batch)
        except asyncpg.PostgresError:
            if len(batch) == 1:
                return
            # The database refused one of them (a value it cannot store): commit
            # them one by one, so that only that one fails.
            for pending in batch:
                with contextlib.suppress(asyncpg.PostgresError):
                    await self._commit([pending])
        except Exception:
            pass  # every pending transition carries the error as its result

    async def _commit(self, batch: list[_Pending]) -> None:
        sent, self._sent = self._sent, []
        try:
            async with self._connect() as conn:
                written = await write_batch(conn, [p.write for p in batch], sent)
        except Exception as exc:
            self._sent = sent + self._sent  # not deleted: try again with the next statement
            for pending in batch:
                pending.result = exc
            raise
        for pending in batch:
            run = pending.write.decision.run
            if run.id in written.updated:
                pending.result = Applied(run, tuple(written.outbox.get(run.id, ())))
            else:
                pending.result = Conflict()

    async def forget(self, ids: Sequence[int]) -> None:
        """Forget published outbox rows.

        The deletion is deferred: it rides along with the next transition this
        process commits, or with :meth:`flush_outbox` (the relay calls it every
        cycle), so publishing costs no round trip of its own. A crash before the
        deletion only means the relay publishes the rows again, and the version
        check drops the duplicates.
        """
        self._sent.extend(ids)
        if len(self._sent) >= _SENT_FLUSH_AT:
            await self.flush_outbox()

    async def flush_outbox(self) -> None:
        sent, self._sent = self._sent, []
        if not sent:
            return
        try:
            async with self._connect() as conn:
                await conn.execute(q.DELETE_OUTBOX, sent)
        except BaseException:
            self._sent = sent + self._sent
            raise
