"""What can happen to a run: the inputs of ``decide``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from legato.machine.errors import ErrorInfo
from legato.machine.run import ParentLink, RunStatus, StepKind
from legato.machine.signals import EarlySignal
from legato.machine.values import JSON
from legato.machine.vocabulary import TimerPurpose

Waited = tuple[tuple[str, float], ...]
"""Seconds a step attempt waited for each flow-control limit before it started."""


@dataclass(frozen=True)
class StepSucceeded:
    seq: int
    attempt: int
    output: JSON = None
    kind: StepKind = StepKind.STEP
    started_at: float | None = None
    finished_at: float | None = None
    waited: Waited = ()


@dataclass(frozen=True)
class StepFailed:
    """An attempt failed. ``retry_after`` and ``non_retryable`` carry the
    handler's own wishes (``RetryAfter``, ``NonRetryableError``)."""

    seq: int
    attempt: int
    error: ErrorInfo
    kind: StepKind = StepKind.STEP
    started_at: float | None = None
    finished_at: float | None = None
    retry_after: float | None = None
    non_retryable: bool = False
    waited: Waited = ()


@dataclass(frozen=True)
class StepDeferred:
    """The attempt handed its completion to a token (``CompleteLater``): it ends
    when the token is completed or failed from outside, or ``timeout`` passes.
    ``digest`` names the token (its SHA-256); the token itself is never stored."""

    seq: int
    attempt: int
    digest: str
    timeout: float | None = None
    kind: StepKind = StepKind.STEP
    started_at: float | None = None
    finished_at: float | None = None
    waited: Waited = ()


@dataclass(frozen=True)
class CompletionReceived:
    """A completion token of the attempt was completed (``error`` None: with
    ``output``) or failed (with ``error``; the retry policy applies)."""

    seq: int
    attempt: int
    actor: str
    output: JSON = None
    error: ErrorInfo | None = None
    non_retryable: bool = False


@dataclass(frozen=True)
class TimerFired:
    """A durable timer came due."""

    key: str
    purpose: TimerPurpose
    seq: int | None = None
    attempt: int | None = None


@dataclass(frozen=True)
class SignalReceived:
    """A signal for an approval. ``early`` says what to do when the run does not
    wait for it yet: keep it until it does, or refuse it."""

    name: str
    data: Mapping[str, JSON] = field(default_factory=dict)
    actor: str = "unknown"
    early: EarlySignal = EarlySignal.REFUSE


@dataclass(frozen=True)
class RetryRequested:
    """An operator asks to try a suspended or failed step again, with a fresh budget."""

    actor: str
    state: str | None = None
    data: Mapping[str, JSON] | None = None
    dead_letter: int | None = None


@dataclass(frozen=True)
class SkipRequested:
    """An operator marks a suspended or failed step done, with ``output`` as its result."""

    actor: str
    state: str | None = None
    output: Mapping[str, JSON] | None = None


@dataclass(frozen=True)
class PauseRequested:
    """An operator pauses the run: steps running finish, no new one starts."""

    actor: str
    reason: str = ""


@dataclass(frozen=True)
class ResumeRequested:
    """An operator resumes a paused run: the steps held back are dispatched."""

    actor: str


@dataclass(frozen=True)
class StepHeldBack:
    """A worker got the task of a paused run before it started the handler: hold it."""

    seq: int
    attempt: int
    kind: StepKind = StepKind.STEP


@dataclass(frozen=True)
class CancelRequested:
    actor: str
    compensate: bool = True
    reason: str = ""


@dataclass(frozen=True)
class ChildEnded:
    """A child run ended (told through the outbox): ``status`` with its data or error.

    ``seq``, ``attempt`` and ``kind`` name the parent's step waiting for it."""

    seq: int
    attempt: int
    child: str
    status: RunStatus
    output: JSON = None
    error: ErrorInfo | None = None
    kind: StepKind = StepKind.STEP


@dataclass(frozen=True)
class CompensateRequested:
    """The parent of this (succeeded) child run unwinds: undo the child's completed steps,
    then report to ``parent``."""

    parent: ParentLink


Event = (
    StepSucceeded
    | StepFailed
    | StepDeferred
    | CompletionReceived
    | TimerFired
    | SignalReceived
    | RetryRequested
    | SkipRequested
    | CancelRequested
    | PauseRequested
    | ResumeRequested
    | StepHeldBack
    | ChildEnded
    | CompensateRequested
)
