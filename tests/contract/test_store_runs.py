"""The runs-and-transitions role (:class:`~legato.store.ports.RunStore`), on every backend."""

from __future__ import annotations

import asyncio

from legato import RunStatus
from legato.machine.commands import Decision
from legato.machine.decide import decide, start_run
from legato.machine.events import StepFailed, StepSucceeded
from legato.machine.vocabulary import HistoryKind
from legato.messages import TaskMessage
from legato.store.base import (
    Applied,
    Conflict,
    RunQuery,
)
from legato.store.ports import Store
from legato.store.rows import new_run_id
from tests.contract.workflow import NOW, WF, started
from tests.unit.sim import boom


async def test_create_and_load_a_run_with_its_first_outbox_message(store: Store) -> None:
    decision = started()
    created = await store.create_run(decision, {"traceparent": "00-abc-def-01"})
    assert created.created
    [message] = created.outbox
    task = TaskMessage.decode(message.body)
    assert (task.run_id, task.state, task.attempt) == (decision.run.id, "a", 1)
    assert message.headers == {"traceparent": "00-abc-def-01"}
    loaded = await store.load_run(decision.run.id)
    assert loaded == decision.run
    history = await store.history(decision.run.id)
    assert [(e.version, e.kind) for e in history] == [(1, "run_started"), (1, "step_scheduled")]


async def test_an_idempotency_key_starts_one_run(store: Store) -> None:
    first = await store.create_run(started(key="order:42"))
    second = await store.create_run(started(key="order:42"))
    assert first.created
    assert not second.created
    assert second.run.id == first.run.id
    assert second.outbox == ()
    assert len(await store.list_runs(RunQuery())) == 1


async def test_concurrent_creates_with_one_key_start_one_run(store: Store) -> None:
    results = await asyncio.gather(*(store.create_run(started(key="same")) for _ in range(8)))
    assert sum(r.created for r in results) == 1
    assert len({r.run.id for r in results}) == 1


async def test_apply_is_conditional_on_the_version(store: Store) -> None:
    created = await store.create_run(started())
    run = created.run
    first = decide(WF, run, StepSucceeded(1, 1, {"x": 1}), NOW + 1)
    second = decide(WF, run, StepFailed(1, 1, boom()), NOW + 1)
    assert isinstance(first, Decision)
    assert isinstance(second, Decision)
    assert isinstance(await store.apply(first), Applied)
    # The second was decided on the same version: it loses and changes nothing.
    assert isinstance(await store.apply(second), Conflict)
    loaded = await store.load_run(run.id)
    assert loaded == first.run
    assert loaded is not None
    assert loaded.data["x"] == 1
    kinds = [e.kind for e in await store.history(run.id)]
    assert "step_failed" not in kinds


async def test_only_one_of_many_racing_transitions_wins(store: Store) -> None:
    run = (await store.create_run(started())).run
    decisions = [decide(WF, run, StepSucceeded(1, 1, {"winner": i}), NOW + 1) for i in range(10)]
    results = await asyncio.gather(*(store.apply(d) for d in decisions if isinstance(d, Decision)))
    assert sum(isinstance(r, Applied) for r in results) == 1
    history = await store.history(run.id)
    assert [e.kind for e in history].count(HistoryKind.STEP_SUCCEEDED) == 1


async def test_list_runs_filters_and_pages(store: Store) -> None:
    for i in range(5):
        await store.create_run(start_run(WF, new_run_id(), {}, NOW + i))
    newest = await store.list_runs(RunQuery(limit=2))
    assert [r.created_at for r in newest] == [NOW + 4, NOW + 3]
    page = await store.list_runs(RunQuery(limit=10, before=NOW + 3))
    assert [r.created_at for r in page] == [NOW + 2, NOW + 1, NOW]
    assert await store.list_runs(RunQuery(status=RunStatus.SUCCEEDED)) == []
    assert len(await store.list_runs(RunQuery(workflow="contract"))) == 5
    assert await store.list_runs(RunQuery(workflow="other")) == []


async def test_rejections_are_recorded_without_touching_the_run(store: Store) -> None:
    run = (await store.create_run(started())).run
    await store.record_rejection(run, "StepSucceeded", "stale result", NOW)
    history = await store.history(run.id)
    assert history[-1].kind == "rejected"
    assert history[-1].detail == {"event": "StepSucceeded", "reason": "stale result"}
    assert await store.load_run(run.id) == run


async def test_a_run_id_in_another_spelling_finds_the_run(store: Store) -> None:
    run = (await store.create_run(started())).run
    for spelling in (run.id.upper(), run.id.replace("-", "")):
        assert await store.load_run(spelling) == run
        assert len(await store.history(spelling)) == 2


async def test_unknown_runs_are_none(store: Store) -> None:
    assert await store.load_run(new_run_id()) is None
    assert await store.load_run("not-a-uuid") is None


async def test_a_burst_of_creations_starts_each_key_once_with_its_first_transition(store: Store) -> None:
    # Postgres creates concurrent runs together (store/postgres/creation.py):
    # duplicates inside one batch, and keys that already had a run, must each
    # come back as "not created" with the run that holds the key.
    before = await store.create_run(started(key="burst:0"))
    decisions = [started(key=f"burst:{i % 20}") for i in range(60)] + [started() for _ in range(10)]
    results = await asyncio.gather(*(store.create_run(d) for d in decisions))

    by_key: dict[str | None, set[str]] = {}
    for decision, result in zip(decisions, results, strict=True):
        key = decision.run.idempotency_key
        by_key.setdefault(key, set()).add(result.run.id)
        assert result.run.idempotency_key == key
        if result.created:
            assert result.run.id == decision.run.id
            [message] = result.outbox
            assert TaskMessage.decode(message.body).run_id == decision.run.id
            history = await store.history(decision.run.id)
            assert [e.kind for e in history] == [HistoryKind.RUN_STARTED, HistoryKind.STEP_SCHEDULED]
        else:
            assert result.outbox == ()
    assert by_key["burst:0"] == {before.run.id}
    assert all(len(ids) == 1 for key, ids in by_key.items() if key is not None)
    assert sum(r.created for r in results) == 19 + 10
    assert len(await store.list_runs(RunQuery(limit=200))) == 1 + 19 + 10


async def test_a_value_the_database_refuses_fails_only_its_own_creation(store: Store) -> None:
    # Postgres's jsonb cannot hold NUL; a batch that meets it falls back to one by one.
    bad = start_run(WF, new_run_id(), {"text": "a\x00b"}, NOW, idempotency_key="refused")
    decisions = [started(key=f"fine:{i}") for i in range(20)]
    results = await asyncio.gather(
        *(store.create_run(d) for d in [*decisions[:10], bad, *decisions[10:]]), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) <= 1  # SQLite stores it; Postgres refuses exactly that one
    assert sum(1 for r in results if not isinstance(r, BaseException) and r.created) == len(results) - len(
        failures
    )


async def test_runs_are_found_by_an_unambiguous_prefix_of_their_id(store: Store) -> None:
    ids = [
        "3f2a1b4c-0000-4000-8000-000000000001",
        "3f2a1b4c-0000-4000-8000-000000000002",
        "3f2b0000-0000-4000-8000-000000000000",
    ]
    for run_id in ids:
        await store.create_run(start_run(WF, run_id, {}, NOW))
    assert await store.run_ids_starting_with("3f2a", 10) == ids[:2]
    assert await store.run_ids_starting_with("3F2A1B4C-0000-4000-8000-000000000002", 10) == [ids[1]]
    assert await store.run_ids_starting_with("3f2b", 10) == [ids[2]]
    assert await store.run_ids_starting_with("3f", 1) == ids[:1]
    assert await store.run_ids_starting_with("3f2a1b4c0", 10) == []  # the hyphen is part of the id
    assert await store.run_ids_starting_with("3f2c", 10) == []
    for nonsense in ("", "-", "zz", "3f2a%", "3f2a_", "'; DROP TABLE runs; --", "0" * 33):
        assert await store.run_ids_starting_with(nonsense, 10) == []


async def test_runs_are_counted_as_they_are_listed(store: Store) -> None:
    for _ in range(3):
        await store.create_run(started())
    assert await store.count_runs(RunQuery()) == 3
    assert await store.count_runs(RunQuery(status=RunStatus.RUNNING)) == 3
    assert await store.count_runs(RunQuery(status=RunStatus.SUCCEEDED)) == 0
    assert await store.count_runs(RunQuery(workflow="other")) == 0
    assert await store.count_runs(RunQuery(before=NOW)) == 0
    assert len(await store.list_runs(RunQuery(limit=2))) == 2
    await store.create_run(started(key="counted"))
    assert await store.count_runs(RunQuery(key="counted")) == 1
    assert await store.count_runs(RunQuery(since=NOW, until=NOW + 1)) == 4
    assert await store.count_runs(RunQuery(since=NOW + 1)) == 0
