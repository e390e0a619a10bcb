"""Results of one run that arrive together take turns in the engine instead of
racing, and those that wait for a turn are committed together with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from legato import App, Branch, Child, Map, Parallel, RetryPolicy, RunStatus, Task, Workflow
from legato.engine import Engine, _Pending
from legato.errors import DefinitionError, StoreError
from legato.machine.commands import Decision, Rejection, ScheduleTimer
from legato.machine.errors import ErrorInfo
from legato.machine.events import Event, StepFailed, StepSucceeded
from legato.machine.run import Run, Token
from legato.machine.vocabulary import HistoryKind
from legato.observe import ConflictInput, Observer
from legato.store.sqlite import SqliteStore


def h(ctx: Any) -> None:
    return None


WIDE = Workflow(
    "wide", start="each", states={"each": Map("xs", Branch("x", {"x": Task(h)}), max_concurrency=20)}
)


class Conflicts(Observer):
    def __init__(self) -> None:
        self.count = 0

    def conflict(self, conflict: ConflictInput) -> None:
        self.count += 1


async def test_twenty_items_finishing_at_once_cause_no_conflict_and_join_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "turns.db")
    await store.open()
    try:
        await store.migrate()
        conflicts = Conflicts()
        engine = Engine(App([WIDE]), store, None, observer=conflicts)
        started = await engine.start("wide", {"xs": list(range(20))})
        run = started.run
        items = [t for t in run.tokens if t.state == "x"]
        assert len(items) == 20
        async with anyio.create_task_group() as group:
            for token in items:
                # Each with the run as it was when its step started, as a worker has it.
                group.start_soon(engine.apply, run, StepSucceeded(token.seq, 1, {"n": token.branch}))
        final = await store.load_run(run.id)
        assert final is not None
        assert final.status is RunStatus.SUCCEEDED
        assert final.data["results"] == [{"n": i} for i in range(20)]
        # The first took the turn alone; the nineteen that queued behind it went
        # in the next commit, each item's result recorded.
        assert final.version == run.version + 2
        ends = [r for r in await store.history(run.id) if r.kind is HistoryKind.STEP_SUCCEEDED]
        assert len(ends) == 20
        assert conflicts.count == 0
        assert len(engine._turns) == 0  # nothing kept once nobody waits
    finally:
        await store.close()


FAN = Workflow(
    "fan",
    start="p",
    retry=RetryPolicy(max_attempts=3, initial_delay=60, jitter=0),
    states={
        "p": Parallel([Branch(f"b{i}", {f"b{i}": Task(h)}) for i in range(3)], next="after"),
        "after": Task(h),
    },
)


def branches(run: Run) -> list[Token]:
    """The run's branch steps (states ``b...``), in the order they were entered."""
    return sorted((t for t in run.tokens if t.state.startswith("b")), key=lambda t: t.seq)


async def _queued(engine: Engine, run: Run, events: list[Event]) -> list[Decision | Rejection]:
    """Apply ``events`` to ``run`` with all of them waiting for the same turn."""
    outcomes = await _queued_or_raised(engine, run, events)
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    return [o for o in outcomes if not isinstance(o, Exception)]


async def _queued_or_raised(
    engine: Engine, run: Run, events: list[Event]
) -> list[Decision | Rejection | Exception]:
    """What each of ``events``, waiting for the same turn, got back, or raised."""
    outcomes: list[Decision | Rejection | Exception | None] = [None] * len(events)

    async def one(i: int, event: Event) -> None:
        try:
            outcomes[i] = await engine.apply(run.id, event)
        except Exception as exc:
            outcomes[i] = exc

    # Held by a caller that is answered already, so it joins nobody.
    holder = _Pending(events[0], None, None, None, outcome=Rejection("holding the turn"))
    async with anyio.create_task_group() as group, engine._turns.take(run.id, holder) as turn:
        for i, event in enumerate(events):
            group.start_soon(one, i, event)
            await anyio.wait_all_tasks_blocked()
        assert len(turn.queue) == len(events) + 1
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


async def test_a_refused_event_in_the_queue_is_decided_in_its_own_turn(sqlite_store: SqliteStore) -> None:
    engine = Engine(App([FAN]), sqlite_store, None)
    run = (await engine.start("fan", {})).run
    b0, b1, b2 = branches(run)
    first, second, again, third = await _queued(
        engine,
        run,
        [
            StepSucceeded(b0.seq, 1, {"b0": 1}),
            StepSucceeded(b1.seq, 1, {"b1": 1}),
            StepSucceeded(b1.seq, 1, {"b1": 2}),  # a duplicate: refused
            StepSucceeded(b2.seq, 1, {"b2": 1}),
        ],
    )
    # The first two in one commit, the duplicate refused alone, then the third.
    assert isinstance(first, Decision)
    assert first is second
    assert first.run.version == run.version + 1
    assert isinstance(again, Rejection)
    assert isinstance(third, Decision)
    assert third.run.version == run.version + 2
    final = await sqlite_store.load_run(run.id)
    assert final is not None
    assert final.version == run.version + 2
    assert final.data == {"b0": 1, "b1": 1, "b2": 1}
    kinds = [r.kind for r in await sqlite_store.history(run.id)]
    assert kinds.count(HistoryKind.STEP_SUCCEEDED) == 3
    assert kinds.count(HistoryKind.REJECTED) == 1


async def test_a_transition_with_a_timer_is_committed_alone(sqlite_store: SqliteStore) -> None:
    engine = Engine(App([FAN]), sqlite_store, None)
    run = (await engine.start("fan", {})).run
    b0, b1, b2 = branches(run)
    ok0, failed, ok2 = await _queued(
        engine,
        run,
        [
            StepSucceeded(b0.seq, 1, {"b0": 1}),
            StepFailed(b1.seq, 1, ErrorInfo.of("Boom", "retry me")),
            StepSucceeded(b2.seq, 1, {"b2": 1}),
        ],
    )
    assert isinstance(ok0, Decision)
    assert isinstance(failed, Decision)
    assert isinstance(ok2, Decision)
    # The retry's timer goes in a commit of its own: three commits, in order.
    assert [ok0.run.version, failed.run.version, ok2.run.version] == [
        run.version + 1,
        run.version + 2,
        run.version + 3,
    ]
    assert any(isinstance(c, ScheduleTimer) for c in failed.commands)
    assert failed.history == tuple(r for r in failed.history if r.state == "b1")
    assert await sqlite_store.next_timer_at() is not None


class Refusing(SqliteStore):
    """The real store, refusing any transition whose data holds ``poison``, as a
    database refuses a value it cannot store."""

    async def apply(self, decision: Decision, *args: Any, **kwargs: Any) -> Any:
        if "poison" in decision.run.data:
            raise StoreError("the database refused the value")
        return await super().apply(decision, *args, **kwargs)


@pytest.fixture
async def refusing_store(tmp_path: Path) -> AsyncIterator[Refusing]:
    store = Refusing(tmp_path / "turns.db")
    await store.open()
    await store.migrate()
    yield store
    await store.close()


async def test_what_the_store_refuses_fails_only_its_own_caller(refusing_store: Refusing) -> None:
    engine = Engine(App([FAN]), refusing_store, None)
    run = (await engine.start("fan", {})).run
    b0, b1, b2 = branches(run)
    ok0, refused, ok2 = await _queued_or_raised(
        engine,
        run,
        [
            StepSucceeded(b0.seq, 1, {"b0": 1}),
            StepSucceeded(b1.seq, 1, {"poison": 1}),
            StepSucceeded(b2.seq, 1, {"b2": 1}),
        ],
    )
    assert isinstance(ok0, Decision)
    assert isinstance(refused, StoreError)
    assert isinstance(ok2, Decision)
    final = await refusing_store.load_run(run.id)
    assert final is not None
    assert final.data == {"b0": 1, "b2": 1}
    assert [t.state for t in final.tokens if t.state.startswith("b")] == ["b1"]


LOOP = Workflow("loop", start="again", states={"again": Child("loop")})
SPAWNING = Workflow(
    "spawning",
    start="p",
    states={
        "p": Parallel(
            [
                Branch("b0", {"b0": Task(h)}),
                Branch("b1", {"b1": Task(h, next="spawn"), "spawn": Child("loop")}),
            ],
        ),
    },
)


async def test_an_event_whose_decision_fails_fails_only_its_own_caller(sqlite_store: SqliteStore) -> None:
    engine = Engine(App([LOOP, SPAWNING]), sqlite_store, None)
    run = (await engine.start("spawning", {})).run
    b0, b1 = branches(run)
    # b1's next state starts children that start each other: deciding it fails.
    ok, spawned = await _queued_or_raised(
        engine, run, [StepSucceeded(b0.seq, 1, {"b0": 1}), StepSucceeded(b1.seq, 1, {})]
    )
    assert isinstance(ok, Decision)
    assert ok.run.version == run.version + 1
    assert isinstance(spawned, DefinitionError)
    assert "child runs start each other" in str(spawned)
    final = await sqlite_store.load_run(run.id)
    assert final is not None
    assert final.version == run.version + 1
    assert final.data == {"b0": 1}
