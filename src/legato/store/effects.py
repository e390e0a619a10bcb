"""A decision's effects: the one place that knows what each command writes.

:func:`effects` matches every member of the
:data:`~legato.machine.commands.Command` union, with ``assert_never`` in the
default arm: a command added to the core fails ``mypy --strict`` here until
it is given its effects, instead of being dropped by some store at run time.
Every store, and Postgres's group commit, writes a decision from the
:class:`Effects` built here and nothing else.

Each arm also says whether the group-commit statement (runs, history and task
outbox rows; docs/architecture.md) can carry what it adds: the fast path is
chosen positively, per command, not by a list of what it cannot do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

from legato.machine.commands import (
    AwaitCompletion,
    CancelChild,
    CancelTimer,
    CloseDeadLetters,
    CollectMapResults,
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
from legato.machine.run import StepKind
from legato.messages import TaskMessage
from legato.notices import Notice, NoticeKind


@dataclass(frozen=True, slots=True)
class Effects:
    """What a decision writes besides the run row, all in its transaction."""

    history: Sequence[HistoryRecord]
    """The history rows, in order (their index is their ``idx``)."""
    tasks: Sequence[tuple[bytes, int]]
    """Encoded task messages for the outbox, with their priority."""
    schedule: Sequence[ScheduleTimer]
    """Timers to create, or to move when their key exists."""
    cancel: Sequence[str]
    """Keys of this run's timers to delete."""
    dead_letters: Sequence[DeadLetter]
    """Dead-letter records, each with a dead-letter outbox message."""
    close: Sequence[CloseDeadLetters]
    """Open dead letters of this run's steps to close (an operator dealt with the steps)."""
    map_items: Sequence[RecordMapItem]
    """Finished map items, one row each."""
    collect: Sequence[CollectMapResults]
    """Maps that joined: their results go into the run's data, after ``map_items``."""
    awaits: Sequence[AwaitCompletion]
    """Completion tokens to record (by digest), one row each."""
    settles: Sequence[SettleCompletion]
    """Completion tokens used up: their rows are marked with the outcome."""
    group_commit: bool
    """True when the group-commit statement can carry all of the above."""
    notices: Sequence[tuple[bytes, int]] = ()
    """Encoded notices (legato/notices.py) for the outbox, with their priority."""
    children: Sequence[Decision] = ()
    """Child runs to create, each with its first transition, in this transaction."""


def effects(decision: Decision) -> Effects:
    """The effects of ``decision``: one pass over its commands."""
    run = decision.run
    tasks: list[tuple[bytes, int]] = []
    schedule: list[ScheduleTimer] = []
    cancel: list[str] = []
    letters: list[DeadLetter] = []
    close: list[CloseDeadLetters] = []
    items: list[RecordMapItem] = []
    collect: list[CollectMapResults] = []
    awaits: list[AwaitCompletion] = []
    settles: list[SettleCompletion] = []
    notices: list[tuple[bytes, int]] = []
    starts = 0
    group_commit = True
    for command in decision.commands:
        match command:
            case DispatchStep(seq, state, attempt, kind, priority):
                # Group commit writes task outbox rows.
                message = TaskMessage(run.id, seq, state, attempt, kind, run.version)
                tasks.append((message.encode(), priority))
            case ScheduleTimer():
                schedule.append(command)
                group_commit = False  # a timer row (and its NOTIFY)
            case CancelTimer(key):
                cancel.append(key)
                group_commit = False  # a deletion of timer rows
            case DeadLetter():
                letters.append(command)
                group_commit = False  # a dead-letter row, whose id its message carries
            case CloseDeadLetters():
                close.append(command)
                group_commit = False  # an update of dead-letter rows
            case RecordMapItem():
                # Group commit writes map_items rows as it writes history rows.
                items.append(command)
            case CollectMapResults():
                collect.append(command)
                group_commit = False  # a second update of the run's data, read back
            case AwaitCompletion():
                awaits.append(command)
                group_commit = False  # a completion_tokens row
            case SettleCompletion():
                settles.append(command)
                group_commit = False  # an update of a completion_tokens row
            case StartChild():
                starts += 1
                group_commit = False  # another run's insert and its own first transition
            case NotifyParent() | CancelChild() | CompensateChild():
                # Group commit writes notice outbox rows as it writes task rows.
                notices.append((_notice(command, run.id).encode(), run.priority))
            case _:
                assert_never(command)
    if starts != len(decision.children):
        # The shell makes a child's first transition (legato/children.py); without
        # it the child would silently not exist.
        raise ValueError(
            f"run {run.id}: {starts} child runs to start but {len(decision.children)} made; "
            "decisions that start children go through legato.children.with_children"
        )
    return Effects(
        decision.history,
        tasks,
        schedule,
        cancel,
        letters,
        close,
        items,
        collect,
        awaits,
        settles,
        group_commit,
        notices,
        decision.children,
    )


def _notice(command: NotifyParent | CancelChild | CompensateChild, run_id: str) -> Notice:
    """The outbox notice between a parent and its child (legato/notices.py) ``run_id`` sends."""
    match command:
        case NotifyParent(parent, status):
            return Notice(
                NoticeKind.CHILD_ENDED,
                parent.run_id,
                run_id,
                parent.seq,
                parent.attempt,
                parent.kind,
                status.value,
            )
        case CancelChild(child, reason):
            return Notice(NoticeKind.CANCEL_CHILD, child, run_id, reason=reason)
        case CompensateChild(child, parent):
            return Notice(
                NoticeKind.COMPENSATE_CHILD, child, run_id, parent.seq, parent.attempt, StepKind.COMPENSATION
            )
