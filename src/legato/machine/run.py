"""A run: one execution of a workflow, as an immutable value.

``tokens`` are the run's active positions. A workflow without parallel states
has at most one; each branch of a parallel state adds its own. Every token
gets a sequence number unique within the run, so a task message always names
exactly one visit of one state, even when a loop enters the state again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from legato.machine.errors import ErrorInfo
from legato.machine.signals import BufferedSignal
from legato.machine.values import JSON
from legato.machine.vocabulary import TimerPurpose


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    CANCELLED = "cancelled"
    SUSPENDED = "suspended"
    """A step failed for good and waits for a person (retry, skip, cancel)."""
    PAUSED = "paused"
    """An operator paused the run: no new step starts until it is resumed (not
    ``suspended``, which a failure causes; docs/concepts.md)."""


TERMINAL_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.COMPENSATED, RunStatus.CANCELLED}
)
"""A run in one of these never changes again, except that a ``failed`` run
can be resumed by an explicit operator retry (a dead-letter replay)."""


class Phase(StrEnum):
    """What a token is doing."""

    RUNNING = "running"
    """A task attempt is dispatched; a worker owns it until it reports back."""
    RETRY_WAIT = "retry_wait"
    """A failed attempt waits on a durable timer for its retry."""
    WAITING = "waiting"
    """A wait state's timer is pending."""
    AWAITING_SIGNAL = "awaiting_signal"
    """An approval waits for its signal."""
    JOINING = "joining"
    """A parallel state waits for its branches."""
    SUSPENDED = "suspended"
    """A step failed for good and waits for a person."""
    FAILED = "failed"
    """The step that failed the run; kept so that a replay can resume it."""
    AWAITING_COMPLETION = "awaiting_completion"
    """The handler returned a completion token: the attempt ends when the token is
    completed or failed from outside, or its timeout passes (machine/completion.py)."""
    HELD = "held"
    """The step was due to start while the run is paused: dispatched on resume."""


TIMED_PHASES = frozenset({Phase.RETRY_WAIT, Phase.WAITING, Phase.AWAITING_SIGNAL, Phase.AWAITING_COMPLETION})


class StepKind(StrEnum):
    STEP = "step"
    COMPENSATION = "compensation"


@dataclass(frozen=True)
class MapProgress:
    """Where a map state is: counts of its items, and what its running items returned so far.

    Items start in index order, so the items ``started`` are 0 .. started-1;
    ``carry`` holds entries for running items only, which ``max_concurrency``
    bounds, so this value stays small however many items the map has."""

    total: int
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    stopped: int = 0
    """Items waiting for a retry when the map started failing, dropped unfinished."""
    failing: bool = False
    """More items failed than tolerated: none starts any more, the running ones drain."""
    carry: Mapping[int, JSON] = field(default_factory=dict)

    @property
    def running(self) -> int:
        return self.started - self.succeeded - self.failed - self.stopped

    @property
    def pending(self) -> int:
        return self.total - self.started

    def to_json(self) -> JSON:
        raw: dict[str, Any] = {
            "total": self.total,
            "started": self.started,
            "succeeded": self.succeeded,
            "failed": self.failed,
        }
        if self.stopped:
            raw["stopped"] = self.stopped
        if self.failing:
            raw["failing"] = True
        if self.carry:
            raw["carry"] = {str(index): value for index, value in self.carry.items()}
        return raw

    @classmethod
    def from_json(cls, raw: JSON) -> MapProgress:
        return cls(
            total=raw["total"],
            started=raw.get("started", 0),
            succeeded=raw.get("succeeded", 0),
            failed=raw.get("failed", 0),
            stopped=raw.get("stopped", 0),
            failing=raw.get("failing", False),
            carry={int(index): value for index, value in raw.get("carry", {}).items()},
        )


@dataclass(frozen=True)
class Token:
    seq: int
    state: str
    phase: Phase
    kind: StepKind = StepKind.STEP
    attempt: int = 0
    budget_from: int = 1
    parent: int | None = None
    branch: int | None = None
    branches_done: tuple[int, ...] = ()
    draining: bool = False
    since: float = 0.0
    wake_at: float | None = None
    error: ErrorInfo | None = None
    map: MapProgress | None = None
    """Set on a map state's own token."""
    child: str | None = None
    """On a child state's token: the child run this attempt started (or, for a
    compensation, the child run it compensates)."""

    @property
    def attempts_used(self) -> int:
        return self.attempt - self.budget_from + 1

    @property
    def timer_purpose(self) -> TimerPurpose | None:
        """What the durable timer this token waits on is for; None if it waits on none."""
        match self.phase:
            case Phase.RETRY_WAIT:
                return TimerPurpose.RETRY
            case Phase.WAITING:
                return TimerPurpose.WAIT
            case Phase.AWAITING_SIGNAL if self.wake_at is not None:
                return TimerPurpose.APPROVAL
            case Phase.AWAITING_COMPLETION if self.wake_at is not None:
                return TimerPurpose.COMPLETION
            case _:
                return None

    @property
    def timer_key(self) -> str | None:
        purpose = self.timer_purpose
        return None if purpose is None else f"{purpose}:{self.seq}"

    def to_json(self) -> JSON:
        raw: dict[str, Any] = {"seq": self.seq, "state": self.state, "phase": self.phase.value}
        if self.kind is not StepKind.STEP:
            raw["kind"] = self.kind.value
        if self.attempt:
            raw["attempt"] = self.attempt
        if self.budget_from != 1:
            raw["budget_from"] = self.budget_from
        if self.parent is not None:
            raw["parent"] = self.parent
        if self.branch is not None:
            # A compensation of a map item keeps the item's index, with no parent.
            raw["branch"] = self.branch
        if self.branches_done:
            raw["branches_done"] = list(self.branches_done)
        if self.draining:
            raw["draining"] = True
        raw["since"] = self.since
        if self.wake_at is not None:
            raw["wake_at"] = self.wake_at
        if self.error is not None:
            raw["error"] = self.error.to_json()
        if self.map is not None:
            raw["map"] = self.map.to_json()
        if self.child is not None:
            raw["child"] = self.child
        return raw

    @classmethod
    def from_json(cls, raw: JSON) -> Token:
        error = raw.get("error")
        progress = raw.get("map")
        return cls(
            seq=raw["seq"],
            state=raw["state"],
            phase=Phase(raw["phase"]),
            kind=StepKind(raw.get("kind", "step")),
            attempt=raw.get("attempt", 0),
            budget_from=raw.get("budget_from", 1),
            parent=raw.get("parent"),
            branch=raw.get("branch"),
            branches_done=tuple(raw.get("branches_done", ())),
            draining=raw.get("draining", False),
            since=raw.get("since", 0.0),
            wake_at=raw.get("wake_at"),
            error=ErrorInfo.from_json(error) if error else None,
            map=MapProgress.from_json(progress) if progress else None,
            child=raw.get("child"),
        )


@dataclass(frozen=True)
class CompletedStep:
    """A completed step whose compensation would run if the run unwinds."""

    state: str
    seq: int
    item: int | None = None
    """The index of the map item the step belongs to, if it does."""
    child: str | None = None
    """The child run a child state completed: compensating the step compensates it."""

    def to_json(self) -> JSON:
        if self.child is not None:
            return [self.state, self.seq, self.item, self.child]
        if self.item is not None:
            return [self.state, self.seq, self.item]
        return [self.state, self.seq]

    @classmethod
    def from_json(cls, raw: JSON) -> CompletedStep:
        return cls(
            state=raw[0],
            seq=raw[1],
            item=raw[2] if len(raw) > 2 else None,
            child=raw[3] if len(raw) > 3 else None,
        )


@dataclass(frozen=True)
class ParentLink:
    """Where a child run reports its end: the parent run and the step (token) waiting for it."""

    run_id: str
    seq: int
    attempt: int
    kind: StepKind = StepKind.STEP

    def to_json(self) -> JSON:
        return {"run": self.run_id, "seq": self.seq, "attempt": self.attempt, "kind": self.kind.value}

    @classmethod
    def from_json(cls, raw: JSON) -> ParentLink:
        return cls(raw["run"], raw["seq"], raw["attempt"], StepKind(raw.get("kind", "step")))


@dataclass(frozen=True)
class Pause:
    """Who paused a run, when and why (machine/pause.py)."""

    actor: str
    at: float
    reason: str = ""

    def to_json(self) -> JSON:
        return {"actor": self.actor, "at": self.at, "reason": self.reason}

    @classmethod
    def from_json(cls, raw: JSON) -> Pause:
        return cls(actor=raw["actor"], at=raw["at"], reason=raw.get("reason", ""))


@dataclass(frozen=True)
class Run:
    id: str
    workflow: str
    workflow_version: int
    status: RunStatus
    version: int
    input: JSON
    data: Mapping[str, JSON]
    created_at: float
    updated_at: float
    priority: int = 1
    idempotency_key: str | None = None
    trace_context: Mapping[str, str] | None = None
    finished_at: float | None = None
    deadline: float | None = None
    sla_met: bool | None = None
    error: ErrorInfo | None = None
    tokens: tuple[Token, ...] = ()
    next_seq: int = 1
    completed: tuple[CompletedStep, ...] = ()
    compensating: bool = False
    cancel_requested: bool = False
    compensated: int = 0
    signals: tuple[BufferedSignal, ...] = ()
    """Signals sent before the run waited for them, oldest first (machine/signals.py)."""
    paused: Pause | None = None
    """Set while an operator has the run paused."""
    parent: ParentLink | None = None
    """Set on a child run: the parent step it reports to (machine/child.py)."""
    extra: Mapping[str, JSON] = field(default_factory=dict)
    search: Mapping[str, str | None] | None = None
    """The values of the workflow's search attributes (machine/search.py); None
    when it declares none."""

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def evolve(self, **changes: Any) -> Run:
        """A copy with ``changes`` -- what ``dataclasses.replace`` does, without
        calling ``__init__`` field by field: every transition makes one of these,
        and a frozen dataclass without ``__post_init__`` is fully described by
        its ``__dict__``."""
        unknown = changes.keys() - _RUN_FIELDS
        if unknown:
            raise TypeError(f"Run has no field(s) {sorted(unknown)}")
        copy = object.__new__(Run)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy

    def token(self, seq: int) -> Token | None:
        for token in self.tokens:
            if token.seq == seq:
                return token
        return None

    @property
    def current_states(self) -> tuple[str, ...]:
        """The states the run is at now, for display and filtering."""
        return tuple(t.state for t in self.tokens if t.phase is not Phase.JOINING)

    def expects(self, seq: int, attempt: int, kind: StepKind) -> bool:
        """True when a task message for this step attempt is still wanted."""
        token = self.token(seq)
        return (
            token is not None
            and token.phase is Phase.RUNNING
            and token.attempt == attempt
            and token.kind is kind
            and (not self.finished)
        )

    def machine_json(self) -> JSON:
        """The execution state that has no column of its own."""
        raw: dict[str, Any] = {
            "tokens": [t.to_json() for t in self.tokens],
            "next_seq": self.next_seq,
        }
        if self.completed:
            raw["completed"] = [c.to_json() for c in self.completed]
        if self.compensating:
            raw["compensating"] = True
        if self.cancel_requested:
            raw["cancel_requested"] = True
        if self.compensated:
            raw["compensated"] = self.compensated
        if self.signals:
            raw["signals"] = [s.to_json() for s in self.signals]
        if self.paused is not None:
            raw["paused"] = self.paused.to_json()
        if self.parent is not None:
            raw["parent"] = self.parent.to_json()
        if self.extra:
            raw["extra"] = dict(self.extra)
        return raw

    def with_machine(self, raw: JSON) -> Run:
        return replace(
            self,
            tokens=tuple(Token.from_json(t) for t in raw.get("tokens", ())),
            next_seq=raw.get("next_seq", 1),
            completed=tuple(CompletedStep.from_json(c) for c in raw.get("completed", ())),
            compensating=raw.get("compensating", False),
            cancel_requested=raw.get("cancel_requested", False),
            compensated=raw.get("compensated", 0),
            signals=tuple(BufferedSignal.from_json(s) for s in raw.get("signals", ())),
            paused=Pause.from_json(raw["paused"]) if raw.get("paused") else None,
            parent=ParentLink.from_json(raw["parent"]) if raw.get("parent") else None,
            extra=raw.get("extra", {}),
        )


_RUN_FIELDS = frozenset(f.name for f in fields(Run))
