"""What the shell must carry out after a transition: the outputs of ``decide``.

Commands are data. The store writes them in the same transaction as the
transition (outbox, timers, dead letters), so none is lost or done twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from legato.machine.errors import ErrorInfo
from legato.machine.run import ParentLink, Run, RunStatus, StepKind
from legato.machine.values import JSON
from legato.machine.vocabulary import CompletionOutcome, DeadLetterStatus, HistoryKind, TimerPurpose


@dataclass(frozen=True)
class DispatchStep:
    """Publish a task message so that a worker runs this step attempt."""

    seq: int
    state: str
    attempt: int
    kind: StepKind
    priority: int


DEADLINE_TIMER = "deadline"
"""The key of a run's one deadline (SLA) timer; step timers are keyed by token."""


@dataclass(frozen=True)
class ScheduleTimer:
    key: str
    fire_at: float
    purpose: TimerPurpose
    seq: int | None = None
    attempt: int | None = None


@dataclass(frozen=True)
class CancelTimer:
    key: str


@dataclass(frozen=True)
class DeadLetter:
    """A step failed for good: record it and send it to the dead-letter queue."""

    seq: int
    state: str
    attempt: int
    kind: StepKind
    reason: str
    error: ErrorInfo
    attempts: int


@dataclass(frozen=True)
class CloseDeadLetters:
    """An operator dealt with these steps (retried, skipped, or cancelled their run):
    their open dead letters close with ``status``, in the same transaction."""

    seqs: tuple[int, ...]
    status: DeadLetterStatus
    actor: str


@dataclass(frozen=True)
class RecordMapItem:
    """An item of a map finished: store its result (or error) as a row of its own."""

    map_seq: int
    index: int
    ok: bool
    result: JSON
    error: ErrorInfo | None = None


@dataclass(frozen=True)
class CollectMapResults:
    """A map joined: put its items' results, in item order, under ``key`` in the run's data."""

    map_seq: int
    key: str


@dataclass(frozen=True)
class AwaitCompletion:
    """Record the completion token of a step attempt (by its digest), so that
    completing it from outside finds the run."""

    seq: int
    state: str
    attempt: int
    digest: str
    expires_at: float | None = None


@dataclass(frozen=True)
class SettleCompletion:
    """The step attempt's token is used up: completed, failed or timed out."""

    seq: int
    attempt: int
    outcome: CompletionOutcome
    actor: str | None = None


@dataclass(frozen=True)
class StartChild:
    """Create the child run ``child`` (a run of ``workflow``) in this transaction.

    The core knows no other workflow: the shell makes the child's first
    transition (``legato.children``) and the store inserts it with the parent's.
    ``key`` (parent run, step, attempt) makes it one child per attempt."""

    seq: int
    attempt: int
    child: str
    key: str
    workflow: str
    version: int | None
    input: Mapping[str, JSON]
    priority: int


@dataclass(frozen=True)
class NotifyParent:
    """A child run ended: tell its parent, through the outbox."""

    parent: ParentLink
    status: RunStatus


@dataclass(frozen=True)
class CancelChild:
    """The parent ended or unwinds while its child ran: cancel the child, through the outbox."""

    child: str
    reason: str


@dataclass(frozen=True)
class CompensateChild:
    """The parent unwinds: compensate a child it completed; the child reports to ``parent``."""

    child: str
    parent: ParentLink


Command = (
    DispatchStep
    | ScheduleTimer
    | CancelTimer
    | DeadLetter
    | CloseDeadLetters
    | RecordMapItem
    | CollectMapResults
    | AwaitCompletion
    | SettleCompletion
    | StartChild
    | NotifyParent
    | CancelChild
    | CompensateChild
)
"""Every command; :func:`legato.store.effects.effects` says what each one writes.

A run's end is no command: it is the run's status and its ``run_finished``
history record, both written with the transition."""


@dataclass(frozen=True)
class HistoryRecord:
    """One line of a run's append-only history."""

    kind: HistoryKind
    at: float
    state: str | None = None
    attempt: int | None = None
    detail: Mapping[str, JSON] = field(default_factory=dict)
    actor: str | None = None


@dataclass(frozen=True)
class Decision:
    """An applied transition: the new run (version + 1), its commands and history."""

    run: Run
    commands: tuple[Command, ...]
    history: tuple[HistoryRecord, ...]
    previous_version: int = 0
    children: tuple[Decision, ...] = ()
    """The first transitions of the child runs its ``StartChild`` commands create,
    made by the shell (``legato.children``), which knows the children's workflows."""
    data_set: frozenset[str] | None = None
    """The top-level keys of ``run.data`` this transition set; the rest of the
    document is the previous version's, so a store may write just these keys
    (``data || patch``) instead of the whole document. None: the document may be
    new throughout (a new run), write it whole."""


@dataclass(frozen=True)
class Rejection:
    """The event is not legal for the run as it is; the run is unchanged."""

    reason: str
