"""A pure driver for the core: feeds events to ``decide`` like a worker would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from legato.machine.commands import (
    CancelTimer,
    Decision,
    DispatchStep,
    Rejection,
    ScheduleTimer,
)
from legato.machine.decide import decide, start_run
from legato.machine.definition import Workflow
from legato.machine.errors import ErrorInfo
from legato.machine.events import Event, StepFailed, StepSucceeded, TimerFired
from legato.machine.run import Run, RunStatus, StepKind

Outcome = dict[str, Any] | ErrorInfo | None
Behaviour = Callable[[str, int, StepKind], Outcome]


def ok(state: str, attempt: int, kind: StepKind) -> Outcome:
    return {f"{state}_{kind.value}": attempt}


@dataclass
class Sim:
    workflow: Workflow
    now: float = 1000.0
    run: Run | None = None
    pending: list[DispatchStep] = field(default_factory=list)
    timers: dict[str, ScheduleTimer] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    dispatched: list[DispatchStep] = field(default_factory=list)

    def start(self, data: dict[str, Any] | None = None, run_id: str = "run-1") -> Sim:
        self._take(start_run(self.workflow, run_id, data or {}, self.now))
        return self

    def _take(self, decision: Decision) -> None:
        assert self.run is None or decision.run.version == self.run.version + 1
        self.run = decision.run
        self.decisions.append(decision)
        for command in decision.commands:
            if isinstance(command, DispatchStep):
                self.pending.append(command)
                self.dispatched.append(command)
            elif isinstance(command, ScheduleTimer):
                self.timers[command.key] = command
            elif isinstance(command, CancelTimer):
                self.timers.pop(command.key, None)

    def feed(self, event: Event) -> Decision | Rejection:
        assert self.run is not None
        outcome = decide(self.workflow, self.run, event, self.now)
        if isinstance(outcome, Decision):
            self._take(outcome)
        return outcome

    def step(self, behaviour: Behaviour = ok, index: int = 0) -> Decision | Rejection:
        command = self.pending.pop(index)
        result = behaviour(command.state, command.attempt, command.kind)
        if isinstance(result, ErrorInfo):
            return self.feed(StepFailed(command.seq, command.attempt, result, command.kind))
        return self.feed(StepSucceeded(command.seq, command.attempt, result, command.kind))

    def fire_timers(self) -> None:
        """Advance the clock to the next timer and fire it."""
        timer = min(self.timers.values(), key=lambda t: t.fire_at)
        self.now = max(self.now, timer.fire_at)
        del self.timers[timer.key]
        self.feed(TimerFired(timer.key, timer.purpose, timer.seq, timer.attempt))

    def drive(self, behaviour: Behaviour = ok, limit: int = 500) -> Run:
        """Run steps and timers until nothing is left to do."""
        for _ in range(limit):
            if self.pending:
                self.step(behaviour)
            elif self.timers and not (
                len(self.timers) == 1 and "deadline" in self.timers and self.run and self.run.finished
            ):
                self.fire_timers()
            else:
                break
        assert self.run is not None
        return self.run

    def status(self) -> RunStatus:
        assert self.run is not None
        return self.run.status

    def kinds(self) -> list[str]:
        return [h.kind for d in self.decisions for h in d.history]


def boom(type_: str = "RuntimeError", message: str = "boom") -> ErrorInfo:
    return ErrorInfo(type_, message, lineage=(type_, "Exception"))
