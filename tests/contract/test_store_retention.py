"""The retention role (:class:`~legato.store.retention.RetentionStore`), on every backend."""

from __future__ import annotations

import asyncio

import pytest

from legato.clock import ManualClock
from legato.errors import KeyRetired
from legato.lifecycle.retention import Retention, RetentionPolicy
from legato.machine.commands import Decision
from legato.machine.decide import decide, start_run
from legato.machine.events import CancelRequested, StepFailed, TimerFired
from legato.machine.run import Run, RunStatus
from legato.machine.vocabulary import TimerPurpose
from legato.store.base import PoisonMessage, RunQuery
from legato.store.ports import Store
from legato.store.postgres import PostgresStore
from legato.store.retention import Cutoff, Removal
from legato.store.rows import new_run_id
from tests.conftest import PG_DSN
from tests.contract.workflow import NOW, WF, started
from tests.unit.sim import boom

DAY = 86400.0


async def _cancelled(store: Store, key: str | None = None, at: float = NOW) -> Run:
    """A run of WF started and cancelled (finished) at ``at``."""
    run = (await store.create_run(start_run(WF, new_run_id(), {"order": 1}, at, idempotency_key=key))).run
    done = decide(WF, run, CancelRequested("ops", compensate=False), at)
    assert isinstance(done, Decision)
    await store.apply(done)
    assert done.run.finished_at == at
    return done.run


async def _failed_with_letter(store: Store, at: float) -> Run:
    """A run whose step failed its two attempts: failed, with an open dead letter."""
    run = (await store.create_run(start_run(WF, new_run_id(), {}, at))).run
    for event in (
        StepFailed(1, 1, boom("ValueError", "x")),
        TimerFired("retry:1", TimerPurpose.RETRY, 1, 2),
        StepFailed(1, 2, boom("ValueError", "x")),
    ):
        decision = decide(WF, run, event, at)
        assert isinstance(decision, Decision)
        await store.apply(decision)
        run = decision.run
    assert run.status is RunStatus.FAILED
    return run


async def test_expired_finished_runs_go_with_their_rows_and_leave_their_keys(store: Store) -> None:
    old = await _cancelled(store, key="contract:order-1", at=NOW - 10 * DAY)
    recent = await _cancelled(store, at=NOW - DAY)
    running = (await store.create_run(start_run(WF, new_run_id(), {}, NOW - 30 * DAY))).run
    cutoffs = [Cutoff(None, NOW - 7 * DAY, 3 * DAY)]

    expired = await store.expired_runs(cutoffs, 10)
    assert [(e.run_id, e.workflow, e.finished_at) for e in expired] == [(old.id, "contract", NOW - 10 * DAY)]
    history = len(await store.history(old.id))
    removed = await store.remove_runs([Removal(old.id, NOW - 7 * DAY, NOW + 3 * DAY)])
    # One task message was committed with the start and never published: it goes too.
    assert (removed.runs, removed.history, removed.outbox, removed.dead_letters) == (1, history, 1, 0)
    assert await store.load_run(old.id) is None
    assert await store.history(old.id) == []
    assert await store.load_run(recent.id) is not None
    assert await store.load_run(running.id) is not None
    assert await store.expired_runs(cutoffs, 10) == []

    assert await store.retired_key("contract:order-1", NOW) == (old.id, NOW + 3 * DAY)
    with pytest.raises(KeyRetired) as raised:
        await store.create_run(started(key="contract:order-1"))
    assert raised.value.run_id == old.id

    # The window ends: the key is forgotten and may start a run again.
    assert await store.forget_keys(NOW + 3 * DAY - 1) == 0
    assert await store.forget_keys(NOW + 3 * DAY) == 1
    assert await store.retired_key("contract:order-1", NOW + 3 * DAY) is None
    assert (await store.create_run(started(key="contract:order-1"))).created


async def test_a_retired_key_in_a_burst_of_creations_refuses_only_its_own(store: Store) -> None:
    old = await _cancelled(store, key="contract:gone", at=NOW - 10 * DAY)
    await store.remove_runs([Removal(old.id, NOW - 7 * DAY, NOW + 3 * DAY)])
    keys = [f"contract:new-{i}" for i in range(10)]
    results = await asyncio.gather(
        *(store.create_run(started(key=k)) for k in [*keys[:5], "contract:gone", *keys[5:]]),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert [type(r) for r in refused] == [KeyRetired]
    assert all(not isinstance(r, BaseException) and r.created for r in results if r not in refused)
    assert len(await store.list_runs(RunQuery(limit=50))) == 10


async def test_a_run_is_removed_only_if_still_expired_when_removed(store: Store) -> None:
    run = await _cancelled(store, at=NOW - 10 * DAY)
    # Its cutoff moved (a longer retention): nothing goes.
    removed = await store.remove_runs([Removal(run.id, NOW - 20 * DAY, NOW)])
    assert removed.runs == 0
    assert await store.load_run(run.id) is not None
    assert (await store.remove_runs([])).runs == 0


async def test_an_open_dead_letter_keeps_its_run_until_resolved(store: Store) -> None:
    run = await _failed_with_letter(store, NOW - 10 * DAY)
    cutoffs = [Cutoff(None, NOW - 7 * DAY, DAY)]
    assert await store.expired_runs(cutoffs, 10) == []
    status = await store.retention_status(cutoffs, NOW)
    assert (dict(status.expired), status.kept_by_dead_letters) == ({}, 1)
    assert (await store.remove_runs([Removal(run.id, NOW - 7 * DAY, NOW)])).runs == 0

    [letter] = await store.list_dead_letters()
    assert await store.resolve_dead_letter(letter.id, "ops", NOW - 9 * DAY)
    [expired] = await store.expired_runs(cutoffs, 10)
    removed = await store.remove_runs([Removal(expired.run_id, NOW - 7 * DAY, NOW)])
    assert (removed.runs, removed.dead_letters) == (1, 1)
    assert await store.list_dead_letters(status=None) == []


async def test_each_workflow_has_its_cutoff_and_the_default_takes_the_others(store: Store) -> None:
    run = await _cancelled(store, at=NOW - 10 * DAY)
    named = [Cutoff("contract", NOW - 30 * DAY, DAY), Cutoff(None, NOW - DAY, DAY)]
    # "contract" keeps its runs 30 days: the default does not take them.
    assert await store.expired_runs(named, 10) == []
    assert dict((await store.retention_status(named, NOW)).expired) == {}
    shorter = [Cutoff("contract", NOW - 5 * DAY, DAY), Cutoff(None, NOW - 60 * DAY, DAY)]
    assert [e.run_id for e in await store.expired_runs(shorter, 10)] == [run.id]
    assert [e.run_id for e in await store.expired_runs([Cutoff("other", NOW, DAY)], 10)] == []


async def test_expired_runs_come_oldest_first_up_to_the_limit(store: Store) -> None:
    runs = [await _cancelled(store, at=NOW - days * DAY) for days in (8, 12, 10)]
    expired = await store.expired_runs([Cutoff(None, NOW - 7 * DAY, DAY)], 2)
    assert [e.run_id for e in expired] == [runs[1].id, runs[2].id]


async def test_status_counts_what_a_pass_would_remove_and_the_oldest_data(store: Store) -> None:
    empty = await store.retention_status([Cutoff(None, NOW, DAY)], NOW)
    assert (empty.oldest_run, empty.oldest_finished, empty.oldest_history) == (None, None, None)
    await _cancelled(store, key="k1", at=NOW - 10 * DAY)
    await _cancelled(store, at=NOW - 9 * DAY)
    await _cancelled(store, at=NOW - DAY)
    status = await store.retention_status([Cutoff(None, NOW - 7 * DAY, DAY)], NOW)
    assert dict(status.expired) == {"contract": 2}
    assert (status.oldest_run, status.oldest_finished, status.oldest_history) == (
        NOW - 10 * DAY,
        NOW - 10 * DAY,
        NOW - 10 * DAY,
    )
    [first, *_] = await store.expired_runs([Cutoff(None, NOW - 7 * DAY, DAY)], 10)
    await store.remove_runs([Removal(first.run_id, NOW - 7 * DAY, NOW + DAY)])
    later = await store.retention_status([Cutoff(None, NOW - 7 * DAY, DAY)], NOW + 2 * DAY)
    assert (later.retired_keys, later.expired_keys, dict(later.expired)) == (1, 1, {"contract": 1})


async def test_resolved_dead_letters_of_no_run_go_open_ones_stay(store: Store) -> None:
    kept = await store.record_poison(
        PoisonMessage("bad", "q", "k", b"x", None, {}, "fp-open"), NOW - 10 * DAY
    )
    gone = await store.record_poison(
        PoisonMessage("bad", "q", "k", b"y", None, {}, "fp-done"), NOW - 10 * DAY
    )
    assert await store.resolve_dead_letter(gone, "ops", NOW - 9 * DAY)
    status = await store.retention_status([Cutoff(None, NOW - 7 * DAY, DAY)], NOW)
    assert status.resolved_dead_letters == 1
    assert await store.remove_resolved_dead_letters(NOW - 7 * DAY, 10) == 1
    assert [letter.id for letter in await store.list_dead_letters(status=None)] == [kept]


async def test_one_holder_at_a_time_has_a_lease_until_it_expires(store: Store) -> None:
    assert await store.take_maintenance_lease("retention", "a", NOW, 60)
    assert not await store.take_maintenance_lease("retention", "b", NOW + 30, 60)
    assert await store.take_maintenance_lease("retention", "a", NOW + 30, 60)  # renewed: until NOW + 90
    assert not await store.take_maintenance_lease("retention", "b", NOW + 89, 60)
    assert await store.take_maintenance_lease("retention", "b", NOW + 90, 60)  # a died: its lease ran out
    await store.release_maintenance_lease("retention", "a")  # no longer a's: nothing happens
    assert not await store.take_maintenance_lease("retention", "a", NOW + 91, 60)
    await store.release_maintenance_lease("retention", "b")
    assert await store.take_maintenance_lease("retention", "a", NOW + 92, 60)
    assert await store.take_maintenance_lease("other", "b", NOW + 92, 60)


async def test_finished_runs_of_a_day_come_in_pages_by_finish_time(store: Store) -> None:
    runs = [await _cancelled(store, at=NOW - DAY + i) for i in (5, 1, 3, 3)]
    await _cancelled(store, at=NOW)  # the next day
    await store.create_run(start_run(WF, new_run_id(), {}, NOW - DAY + 2))  # not finished
    first = await store.finished_runs("contract", NOW - DAY, NOW, None, 2)
    rest = await store.finished_runs("contract", NOW - DAY, NOW, first[-1], 10)
    same_second = sorted([runs[2].id, runs[3].id])
    assert [r.run_id for r in first + rest] == [runs[1].id, *same_second, runs[0].id]
    assert await store.finished_runs("contract", NOW - DAY, NOW, rest[-1], 10) == []
    assert await store.finished_runs("other", NOW - DAY, NOW, None, 10) == []


async def _partition_tables(store: Store) -> set[str]:
    """The history partitions Postgres has; none on SQLite."""
    if not isinstance(store, PostgresStore):
        return set()
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'history'::regclass"
        )
    return {r["relname"] for r in rows}


def _retention(store: Store, days: float, at: float = NOW) -> Retention:
    return Retention(store, RetentionPolicy(default=days * DAY), ManualClock(at), holder="contract")


async def test_a_day_whose_runs_all_expired_goes_whole_and_a_day_with_a_live_run_stays(
    store: Store,
) -> None:
    # 2027-01-05 and 2027-01-06 (UTC): NOW is 2027-01-15 08:00.
    made = await store.prepare_partitions(NOW - 10 * DAY, 2)
    postgres = isinstance(store, PostgresStore)
    assert set(made) == ({f"history_2027010{d}" for d in (4, 5, 6, 7)} if postgres else set())
    assert await store.prepare_partitions(NOW - 10 * DAY, 2) == []  # made already
    gone = [await _cancelled(store, at=NOW - 10 * DAY + s) for s in (0, 60)]
    kept_day = await _cancelled(store, at=NOW - 9 * DAY)
    unfinished = (await store.create_run(start_run(WF, new_run_id(), {}, NOW - 9 * DAY + 60))).run
    lettered = await _failed_with_letter(store, NOW - 9 * DAY + 120)
    history = {r.id: await store.history(r.id) for r in (kept_day, unfinished, lettered)}

    cutoffs = RetentionPolicy(default=7 * DAY).cutoffs(NOW)
    # Empty days go too (the migration made this week's, in 2026); 01-06 has runs to keep.
    droppable = [p.name for p in await store.droppable_partitions(cutoffs)]
    if postgres:
        assert {"history_20270104", "history_20270105"} <= set(droppable)
        assert "history_20270106" not in droppable
    else:
        assert droppable == []

    report = await _retention(store, 7).run()
    assert report is not None
    assert report.removed.runs == 3
    for run in (*gone, kept_day):
        assert await store.load_run(run.id) is None
        assert await store.history(run.id) == []
    # The unfinished run and the run with an open dead letter keep all their history.
    for run in (unfinished, lettered):
        assert await store.history(run.id) == history[run.id] != []
    if postgres:
        assert report.removed.history_partitions == len(droppable)
        assert report.removed.history == len(history[kept_day.id])  # deleted one by one
        tables = await _partition_tables(store)
        assert "history_20270105" not in tables
        assert {"history_20270106", "history_default"} <= tables
    else:
        assert report.removed.history_partitions == 0


async def test_a_partition_whose_run_came_back_keeps_that_run_and_loses_the_others_rows(
    pg_store: PostgresStore,
) -> None:
    await pg_store.prepare_partitions(NOW - 10 * DAY, 0)
    removed_run = await _cancelled(pg_store, at=NOW - 10 * DAY)
    back = await _cancelled(pg_store, at=NOW - 10 * DAY + 60)
    rows = len(await pg_store.history(removed_run.id))
    [partition] = [
        p
        for p in await pg_store.droppable_partitions([Cutoff(None, NOW - 7 * DAY, DAY)])
        if p.name == "history_20270105"
    ]
    # Only one of the day's runs is removed (as if the other had been resumed
    # between the pass's look and its removal): the day cannot be dropped.
    await pg_store.remove_runs([Removal(removed_run.id, NOW - 7 * DAY, NOW)], history=False)
    left = await pg_store.drop_partition(partition)
    assert (left.history_partitions, left.history) == (0, rows)  # removed_run's rows only
    assert len(await pg_store.history(back.id)) == rows
    assert partition.name in await _partition_tables(pg_store)
    await pg_store.remove_runs([Removal(back.id, NOW - 7 * DAY, NOW)], history=False)
    assert (await pg_store.drop_partition(partition)).history_partitions == 1
    assert partition.name not in await _partition_tables(pg_store)


async def test_history_of_a_day_with_no_partition_lands_in_the_default_one_and_moves_out(
    pg_store: PostgresStore,
) -> None:
    run = await _cancelled(pg_store, at=NOW - 20 * DAY)  # no partition for that day yet
    rows = len(await pg_store.history(run.id))
    async with pg_store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM history_default") == rows
    assert "history_20261226" in await pg_store.prepare_partitions(NOW - 20 * DAY, 0)
    async with pg_store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM history_default") == 0
        assert await conn.fetchval("SELECT count(*) FROM history_20261226") == rows
    assert len(await pg_store.history(run.id)) == rows


async def test_a_worker_role_that_may_only_touch_rows_keeps_retention_going_without_ddl(
    pg_store: PostgresStore, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Least privilege: the schema is migrated by its owner; workers run as a role
    # that may read and write rows but not create or drop tables.
    await pg_store.prepare_partitions(NOW - 10 * DAY, 0)  # the owner made 01-05's partition
    role = f"legato_rows_{pg_schema}"[:63]
    async with pg_store.pool.acquire() as conn:
        await conn.execute(f'CREATE ROLE "{role}" LOGIN')
        await conn.execute(f'GRANT USAGE ON SCHEMA "{pg_schema}" TO "{role}"')
        await conn.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{pg_schema}" TO "{role}"'
        )
        await conn.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{pg_schema}" TO "{role}"')
    worker = PostgresStore(PG_DSN.replace("postgres@", f"{role}@"), pg_schema, min_size=1, max_size=2)
    await worker.open()
    try:
        gone = await _cancelled(worker, at=NOW - 10 * DAY)
        caplog.set_level("WARNING", logger="legato.store")
        report = await Retention(
            worker, RetentionPolicy(default=7 * DAY), ManualClock(NOW), holder="rows-only"
        ).run()
        assert report is not None
        assert report.removed.runs == 1
        assert await worker.history(gone.id) == []  # its rows deleted, since the day cannot be dropped
        warned = " ".join(r.getMessage() for r in caplog.records)
        assert "does not own the history table; run `legato retention run` as the owner" in warned
        assert "history_20270105" in await _partition_tables(pg_store)
    finally:
        await worker.close()
        async with pg_store.pool.acquire() as conn:
            await conn.execute(f'DROP OWNED BY "{role}"')
            await conn.execute(f'DROP ROLE "{role}"')
