"""A decision's effects: every command has them, and group commit takes only what it can write."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, get_args

import pytest

from legato.machine.commands import (
    DEADLINE_TIMER,
    AwaitCompletion,
    CancelChild,
    CancelTimer,
    CloseDeadLetters,
    CollectMapResults,
    Command,
    CompensateChild,
    DeadLetter,
    Decision,
    DispatchStep,
    HistoryRecord,
    NotifyParent,
    RecordMapItem,
    ScheduleTimer,
    SettleCompletion,
    StartChild,
)
from legato.machine.decide import start_run
from legato.machine.errors import ErrorInfo
from legato.machine.run import ParentLink, RunStatus, StepKind
from legato.machine.vocabulary import CompletionOutcome, DeadLetterStatus, HistoryKind, TimerPurpose
from legato.messages import TaskMessage
from legato.store.effects import Effects, effects
from legato.store.postgres.batching import GroupCommit
from legato.store.rows import new_run_id
from tests.contract.workflow import NOW, WF

SAMPLES: dict[type[Any], Command] = {
    DispatchStep: DispatchStep(seq=3, state="b", attempt=2, kind=StepKind.STEP, priority=2),
    ScheduleTimer: ScheduleTimer("retry:1", NOW + 5, TimerPurpose.RETRY, seq=1, attempt=2),
    CancelTimer: CancelTimer(DEADLINE_TIMER),
    DeadLetter: DeadLetter(1, "a", 2, StepKind.STEP, "retries exhausted", ErrorInfo.of("E", "m"), 2),
    CloseDeadLetters: CloseDeadLetters((1,), DeadLetterStatus.REPLAYED, "ops"),
    RecordMapItem: RecordMapItem(4, 7, True, {"sku": "x"}),
    CollectMapResults: CollectMapResults(4, "results"),
    AwaitCompletion: AwaitCompletion(2, "a", 1, "d" * 64, NOW + 60),
    SettleCompletion: SettleCompletion(2, 1, CompletionOutcome.COMPLETED, "cli:ops"),
    StartChild: StartChild(5, 1, "c0ffee00-0000-4000-8000-000000000001", "k", WF.name, None, {}, 1),
    NotifyParent: NotifyParent(ParentLink("c0ffee00-0000-4000-8000-000000000002", 5, 1), RunStatus.SUCCEEDED),
    CancelChild: CancelChild("c0ffee00-0000-4000-8000-000000000001", "parent cancelled"),
    CompensateChild: CompensateChild(
        "c0ffee00-0000-4000-8000-000000000001",
        ParentLink("c0ffee00-0000-4000-8000-000000000002", 9, 1, StepKind.COMPENSATION),
    ),
}
"""One of each command; a new command fails the first test until it has a sample here."""

GROUP_COMMIT = {DispatchStep, NotifyParent, CancelChild, CompensateChild, RecordMapItem}
"""The commands whose effects the group-commit statement writes."""


def decision(*commands: Command) -> Decision:
    first = start_run(WF, new_run_id(), {}, NOW)
    history = (
        HistoryRecord(HistoryKind.STEP_SCHEDULED, NOW, "a", 1),
        HistoryRecord(HistoryKind.RUN_STARTED, NOW),
    )
    children = tuple(
        start_run(WF, c.child, {}, NOW, idempotency_key=c.key) for c in commands if isinstance(c, StartChild)
    )
    return Decision(first.run, commands, history, first.previous_version, children)


def written(found: Effects) -> int:
    return (
        len(found.tasks)
        + len(found.schedule)
        + len(found.cancel)
        + len(found.dead_letters)
        + len(found.close)
        + len(found.map_items)
        + len(found.collect)
        + len(found.awaits)
        + len(found.settles)
        + len(found.notices)
        + len(found.children)
    )


def test_every_command_has_effects_and_a_group_commit_answer() -> None:
    assert set(SAMPLES) == set(get_args(Command))
    for kind, command in SAMPLES.items():
        found = effects(decision(command))
        assert written(found) == 1, kind  # nothing is dropped
        assert found.group_commit is (kind in GROUP_COMMIT), kind


def test_effects_keep_the_history_and_encode_the_task_for_the_new_version() -> None:
    d = decision(SAMPLES[DispatchStep], SAMPLES[CancelTimer])
    found = effects(d)
    assert list(found.history) == list(d.history)
    [(body, priority)] = found.tasks
    assert priority == 2
    assert TaskMessage.decode(body) == TaskMessage(d.run.id, 3, "b", 2, StepKind.STEP, d.run.version)
    assert list(found.cancel) == ["deadline"]
    assert not found.group_commit  # one command it cannot carry is enough


def test_a_decision_without_commands_is_group_committed() -> None:
    found = effects(decision())
    assert written(found) == 0
    assert found.group_commit


async def test_group_commit_refuses_effects_it_cannot_write() -> None:
    def no_connection() -> AbstractAsyncContextManager[Any]:
        raise AssertionError("refused before any statement")

    batch = GroupCommit(no_connection)
    for kind, command in SAMPLES.items():
        if kind in GROUP_COMMIT:
            continue
        d = decision(command)
        with pytest.raises(ValueError, match="group commit cannot carry"):
            await batch.apply(d, effects(d), None)


def test_a_child_to_start_without_its_first_transition_is_refused() -> None:
    first = start_run(WF, new_run_id(), {}, NOW)
    bare = Decision(first.run, (SAMPLES[StartChild],), (), first.previous_version)
    with pytest.raises(ValueError, match="1 child runs to start but 0 made"):
        effects(bare)
