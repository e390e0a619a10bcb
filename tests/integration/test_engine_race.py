"""Parallel branches finishing at the same moment in different workers: the losers re-read and re-decide."""

from __future__ import annotations

import anyio

from legato import App, Branch, Parallel, RunStatus, StepContext, Task, Workflow
from legato.engine import Engine
from legato.machine.commands import Decision
from legato.machine.events import StepSucceeded
from legato.machine.vocabulary import HistoryKind
from legato.observe import ConflictInput, Observer
from legato.store.postgres import PostgresStore


async def noop(ctx: StepContext) -> None:
    return None


WF = Workflow(
    "race",
    start="p",
    states={
        "p": Parallel(
            [Branch("a", {"a": Task(noop)}), Branch("b", {"b": Task(noop)}), Branch("c", {"c": Task(noop)})],
            next="z",
        ),
        "z": Task(noop),
    },
)


class Conflicts(Observer):
    def __init__(self) -> None:
        self.count = 0

    def conflict(self, conflict: ConflictInput) -> None:
        self.count += 1


async def test_concurrent_branch_results_all_apply_and_the_join_fires_once(pg_store: PostgresStore) -> None:
    conflicts = Conflicts()
    # One engine per branch, as separate workers: within one engine, results of
    # a run take turns instead of racing (tests/unit/test_turns.py).
    engines = {state: Engine(App([WF]), pg_store, None, observer=conflicts) for state in "abc"}
    started = await engines["a"].start("race", {})
    stale = started.run  # every branch decides on this same, soon outdated, version
    branches = {t.state: t for t in stale.tokens if t.state in "abc"}
    outcomes: list[object] = []

    async def finish(state: str) -> None:
        token = branches[state]
        outcomes.append(await engines[state].apply(stale, StepSucceeded(token.seq, 1, {state: True})))

    async with anyio.create_task_group() as group:
        for state in "abc":
            group.start_soon(finish, state)

    assert all(isinstance(o, Decision) for o in outcomes)
    assert conflicts.count >= 2  # two of three lost the first race and decided again
    run = await pg_store.load_run(started.run.id)
    assert run is not None
    assert run.status is RunStatus.RUNNING
    assert run.version == stale.version + 3
    assert run.current_states == ("z",)
    assert {k: run.data[k] for k in "abc"} == {"a": True, "b": True, "c": True}
    history = await pg_store.history(run.id)
    assert [e.kind for e in history].count(HistoryKind.JOINED) == 1
    assert [e.kind for e in history].count(HistoryKind.STEP_SUCCEEDED) == 3
