"""The run-watch role (:class:`~legato.store.ports.RunWatch`), on every backend."""

from __future__ import annotations

import anyio

from legato import RunStatus
from legato.machine.commands import Decision
from legato.machine.decide import decide
from legato.machine.events import CancelRequested, StepSucceeded
from legato.store.ports import Store
from legato.store.postgres import PostgresStore
from tests.conftest import PG_DSN
from tests.contract.workflow import NOW, WF, started


class Seen:
    def __init__(self) -> None:
        self.changes: list[tuple[str, RunStatus]] = []
        self.changed = anyio.Event()

    def __call__(self, run_id: str, status: RunStatus) -> None:
        self.changes.append((run_id, status))
        self.changed.set()

    async def until(self, wanted: tuple[str, RunStatus]) -> None:
        with anyio.fail_after(10):
            while wanted not in self.changes:
                self.changed = anyio.Event()
                await self.changed.wait()


async def test_a_watcher_is_told_when_a_run_changes_status(store: Store) -> None:
    seen = Seen()
    await store.subscribe_runs(seen)
    await store.subscribe_runs(seen)  # idempotent
    run = (await store.create_run(started())).run
    moved = decide(WF, run, StepSucceeded(1, 1, None), NOW)
    assert isinstance(moved, Decision)
    await store.apply(moved)
    cancelled = decide(WF, moved.run, CancelRequested("ops"), NOW)
    assert isinstance(cancelled, Decision)
    await store.apply(cancelled)
    await seen.until((run.id, RunStatus.CANCELLED))
    assert seen.changes.count((run.id, RunStatus.CANCELLED)) == 1
    assert all(status is not RunStatus.SUCCEEDED for _, status in seen.changes)

    await store.unsubscribe_runs(seen)
    other = (await store.create_run(started())).run
    gone = decide(WF, other, CancelRequested("ops"), NOW)
    assert isinstance(gone, Decision)
    await store.apply(gone)
    marker = Seen()
    await store.subscribe_runs(marker)
    again = (await store.create_run(started())).run
    last = decide(WF, again, CancelRequested("ops"), NOW)
    assert isinstance(last, Decision)
    await store.apply(last)
    await marker.until((again.id, RunStatus.CANCELLED))
    # Told in order: the unsubscribed watcher heard nothing of the change before.
    assert (other.id, RunStatus.CANCELLED) not in seen.changes
    await store.unsubscribe_runs(marker)


async def test_postgres_tells_the_watchers_of_every_process(pg_store: PostgresStore, pg_schema: str) -> None:
    elsewhere = PostgresStore(PG_DSN, pg_schema, min_size=1, max_size=2)
    await elsewhere.open()
    try:
        seen = Seen()
        await elsewhere.subscribe_runs(seen)
        run = (await pg_store.create_run(started())).run
        moved = decide(WF, run, StepSucceeded(1, 1, None), NOW)
        assert isinstance(moved, Decision)
        await pg_store.apply(moved)
        cancelled = decide(WF, moved.run, CancelRequested("ops"), NOW)
        assert isinstance(cancelled, Decision)
        await pg_store.apply(cancelled)
        await seen.until((run.id, RunStatus.CANCELLED))
        # Only status changes are announced: the step that kept it running was not.
        assert seen.changes == [(run.id, RunStatus.CANCELLED)]
    finally:
        await elsewhere.close()
