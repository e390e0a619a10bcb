"""The values that cross the store's ports (:mod:`legato.store.ports`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from legato.machine.errors import ErrorInfo
from legato.machine.run import Run, RunStatus
from legato.machine.values import JSON
from legato.machine.vocabulary import HistoryKind, TimerPurpose
from legato.outbox import OutboxMessage as OutboxMessage  # the outbox rows the store keeps


@dataclass(frozen=True)
class DueTimer:
    id: int
    run_id: str
    key: str
    purpose: TimerPurpose
    seq: int | None
    attempt: int | None
    fire_at: float


@dataclass(frozen=True)
class HistoryEntry:
    run_id: str
    version: int
    idx: int
    kind: HistoryKind
    at: float
    state: str | None
    attempt: int | None
    actor: str | None
    detail: Mapping[str, JSON]


@dataclass(frozen=True)
class MapItem:
    """One finished item of a map state (``map_seq`` is the map's token)."""

    index: int
    ok: bool
    result: JSON
    error: JSON
    finished_at: float


@dataclass(frozen=True)
class DeadLetterRecord:
    id: int
    source: str
    """``step`` (retries exhausted or non-retryable) or ``message`` (poison)."""
    run_id: str | None
    workflow: str | None
    state: str | None
    seq: int | None
    attempt: int | None
    kind: str | None
    reason: str
    error: ErrorInfo | None
    attempts: int
    created_at: float
    status: str
    """``open`` until replayed (``replayed``)."""
    resolved_at: float | None = None
    resolved_by: str | None = None
    message: Mapping[str, JSON] | None = None


@dataclass(frozen=True)
class RunQuery:
    status: RunStatus | None = None
    workflow: str | None = None
    limit: int = 50
    before: float | None = None
    """Only runs created before this time: the cursor of the next page."""


@dataclass(frozen=True)
class ConsumeTimer:
    """Guard: the transition fires this timer; it must still exist, and goes."""

    timer_id: int


@dataclass(frozen=True)
class ResolveDeadLetter:
    """Guard: the transition replays this dead letter; it must still be open."""

    dead_letter_id: int
    actor: str


Guard = ConsumeTimer | ResolveDeadLetter


@dataclass(frozen=True)
class Applied:
    run: Run
    outbox: tuple[OutboxMessage, ...]


@dataclass(frozen=True)
class Conflict:
    """The run moved on since it was read: re-read it and decide again."""


@dataclass(frozen=True)
class GuardFailed:
    reason: str


@dataclass(frozen=True)
class Created:
    run: Run
    created: bool
    """False when the idempotency key already had a run: ``run`` is that run."""
    outbox: tuple[OutboxMessage, ...]


@dataclass(frozen=True)
class PoisonMessage:
    """A message that cannot be processed, as kept in ``dead_letters``."""

    reason: str
    queue: str
    routing_key: str
    body: bytes
    message_id: str | None
    headers: Mapping[str, JSON]
    fingerprint: str
    step: PoisonedStep | None = None
    """The step a task message was for; the store adds the run's workflow."""


@dataclass(frozen=True, slots=True)
class PoisonedStep:
    """What a dead-lettered task message names: its run, state, visit and attempt."""

    run_id: str
    state: str
    seq: int
    attempt: int


@dataclass(frozen=True)
class DeadLetterGroup:
    """Dead letters sharing a pattern: the failure-pattern view."""

    key: str
    count: int
    first_seen: float
    last_seen: float
    sample_error: str
    sample_id: int
