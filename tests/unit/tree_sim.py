"""A pure driver for trees of runs (parents and their child runs).

It plays the shell's part with ``decide`` and nothing else: it makes a child's
first transition as ``legato.children`` does, keeps every notice a decision
commits (legato/notices.py) in a bag from which the test takes them in any
order, as often as it likes (a redelivery), and applies them as
``worker/notices.py`` does. Step tasks and timers wait in bags too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from legato.machine.commands import (
    CancelChild,
    CancelTimer,
    CompensateChild,
    Decision,
    DispatchStep,
    HistoryRecord,
    NotifyParent,
    Rejection,
    ScheduleTimer,
    StartChild,
)
from legato.machine.decide import decide, start_run
from legato.machine.definition import Workflow
from legato.machine.errors import ErrorInfo
from legato.machine.events import (
    CancelRequested,
    ChildEnded,
    CompensateRequested,
    Event,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from legato.machine.run import ParentLink, Run, RunStatus, StepKind


@dataclass(frozen=True)
class Task:
    run: str
    step: DispatchStep


@dataclass(frozen=True)
class Note:
    """A committed notice: what, to which run, from which."""

    command: NotifyParent | CancelChild | CompensateChild
    source: str


@dataclass
class Forest:
    workflows: Mapping[str, Workflow]
    now: float = 1000.0
    runs: dict[str, Run] = field(default_factory=dict)
    tasks: list[Task] = field(default_factory=list)
    timers: list[tuple[str, ScheduleTimer]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    applied_ends: dict[tuple[str, int, int, StepKind], int] = field(default_factory=dict)
    """Accepted ChildEnded events, by (parent, seq, attempt, kind): each must be 1."""
    created: list[str] = field(default_factory=list)
    commands: dict[str, list[Any]] = field(default_factory=dict)
    history: dict[str, list[HistoryRecord]] = field(default_factory=dict)

    def start(self, workflow: str, data: dict[str, Any], run_id: str = "root") -> str:
        self._take(self._with_children(start_run(self.workflows[workflow], run_id, data, self.now)), new=True)
        return run_id

    def _with_children(self, decision: Decision) -> Decision:
        children = []
        for start in (c for c in decision.commands if isinstance(c, StartChild)):
            child = start_run(
                self.workflows[start.workflow],
                start.child,
                dict(start.input),
                self.now,
                idempotency_key=start.key,
                parent=ParentLink(decision.run.id, start.seq, start.attempt),
            )
            children.append(self._with_children(child))
        return replace(decision, children=tuple(children))

    def _take(self, decision: Decision, new: bool = False) -> None:
        run = decision.run
        if new:
            if run.id in self.runs:  # the key exists: one child per attempt
                return
            self.created.append(run.id)
        else:
            assert run.version == self.runs[run.id].version + 1
        self.runs[run.id] = run
        self.commands.setdefault(run.id, []).extend(decision.commands)
        self.history.setdefault(run.id, []).extend(decision.history)
        for command in decision.commands:
            match command:
                case DispatchStep():
                    self.tasks.append(Task(run.id, command))
                case ScheduleTimer():
                    self.timers.append((run.id, command))
                case CancelTimer(key):
                    self.timers = [(r, t) for r, t in self.timers if not (r == run.id and t.key == key)]
                case NotifyParent() | CancelChild() | CompensateChild():
                    self.notes.append(Note(command, run.id))
                case _:
                    pass
        for child in decision.children:
            self._take(child, new=True)

    def feed(self, run_id: str, event: Event) -> Decision | Rejection:
        run = self.runs[run_id]
        outcome = decide(self.workflows[run.workflow], run, event, self.now)
        if isinstance(outcome, Decision):
            outcome = self._with_children(outcome)
            if isinstance(event, ChildEnded):
                key = (run_id, event.seq, event.attempt, event.kind)
                self.applied_ends[key] = self.applied_ends.get(key, 0) + 1
            self._take(outcome)
        return outcome

    # -- the shell's handlers ------------------------------------------------

    def run_task(self, index: int, fail: bool) -> None:
        task = self.tasks.pop(index)
        step = task.step
        if fail:
            self.feed(task.run, StepFailed(step.seq, step.attempt, ErrorInfo.of("E", "boom"), step.kind))
        else:
            self.feed(task.run, StepSucceeded(step.seq, step.attempt, {step.state: step.attempt}, step.kind))

    def fire_timer(self, index: int) -> None:
        run_id, timer = self.timers.pop(index)
        self.now = max(self.now, timer.fire_at)
        self.feed(run_id, TimerFired(timer.key, timer.purpose, timer.seq, timer.attempt))

    def deliver(self, index: int, redeliver: bool = False) -> None:
        """Take a notice as worker/notices.py does; with ``redeliver`` it stays in the bag."""
        note = self.notes[index] if redeliver else self.notes.pop(index)
        match note.command:
            case NotifyParent(parent):
                child = self.runs[note.source]
                if child.finished:
                    self._tell(parent, child)
            case CancelChild(child_id, reason):
                child = self.runs[child_id]
                if not child.finished:
                    self.feed(
                        child_id, CancelRequested("parent", compensate=not child.compensating, reason=reason)
                    )
            case CompensateChild(child_id, parent):
                child = self.runs[child_id]
                if child.status is RunStatus.SUCCEEDED:
                    self.feed(child_id, CompensateRequested(parent))
                elif child.finished:
                    self._tell(parent, child)

    def _tell(self, link: ParentLink, child: Run) -> None:
        parent = self.runs[link.run_id]
        if parent.finished:
            return
        event = ChildEnded(
            link.seq, link.attempt, child.id, child.status, dict(child.data), child.error, link.kind
        )
        self.feed(link.run_id, event)

    @property
    def busy(self) -> bool:
        return bool(self.tasks or self.notes or [t for r, t in self.timers if not self.runs[r].finished])
