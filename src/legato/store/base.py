"""The values that cross the store's ports (:mod:`legato.store.ports`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from legato.machine.commands import Decision
from legato.machine.errors import ErrorInfo
from legato.machine.run import Run, RunStatus
from legato.machine.schedules import Schedule, TickLine
from legato.machine.search import path_problem
from legato.machine.values import JSON
from legato.machine.vocabulary import CompletionOutcome, HistoryKind, TickOutcome, TimerPurpose
from legato.outbox import OutboxMessage as OutboxMessage  # the outbox rows the store keeps


@dataclass(frozen=True)
class DueTimer:
    id: int
    run_id: str | None
    """None for a schedule's timer."""
    key: str
    purpose: TimerPurpose
    seq: int | None
    attempt: int | None
    fire_at: float
    schedule: str | None = None


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
    """Where a poison message came from: queue, routing key, message id, headers."""
    body: bytes | None = None
    """A poison message's body, byte for byte as it was delivered."""


@dataclass(frozen=True)
class RunQuery:
    status: RunStatus | None = None
    workflow: str | None = None
    limit: int = 50
    before: float | None = None
    """Only runs created before this time: the cursor of the next page."""
    where: Mapping[str, str] = field(default_factory=dict)
    """Search attributes (machine/search.py) and the value each must have."""
    key: str | None = None
    """Only the run started with this idempotency key."""
    since: float | None = None
    """Only runs created at or after this time."""
    until: float | None = None
    """Only runs created before this time."""

    def __post_init__(self) -> None:
        for path in self.where:
            problem = path_problem(path)
            if problem is not None:
                raise ValueError(problem)


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


LeaseDetails = dict[str, Any]
"""What a handler reports with ``ctx.heartbeat(details=...)``: a JSON object."""


@dataclass(frozen=True)
class LeaseGrant:
    """A lease on a step attempt was taken; ``details`` is what the step last
    reported (in an earlier attempt), or None."""

    details: LeaseDetails | None


class LeaseEnd(StrEnum):
    """How a leased attempt ended in its worker."""

    DONE = "done"
    """It succeeded: the lease and its details go."""
    FAILED = "failed"
    """It failed (or was interrupted): the lease goes, its details stay for the next attempt."""
    ABANDONED = "abandoned"
    """The worker stops without an outcome (shutdown): the lease runs out now, so
    the heartbeat timer dispatches the step again at once."""


HEARTBEAT_TIMER_PREFIX = "heartbeat:"


def heartbeat_timer_key(seq: int) -> str:
    return f"{HEARTBEAT_TIMER_PREFIX}{seq}"


@dataclass(frozen=True)
class CompletionRecord:
    """A completion token's row (found by its digest; the token itself is not kept)."""

    run_id: str
    seq: int
    attempt: int
    state: str
    created_at: float
    expires_at: float | None
    settled_at: float | None = None
    outcome: CompletionOutcome | None = None
    """None while the token is open."""
    settled_by: str | None = None


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


class ScheduleSource(StrEnum):
    """Who owns a schedule's definition."""

    CODE = "code"
    """Declared on a workflow; a worker's start creates or updates it."""
    RUNTIME = "runtime"
    """Created from the CLI, the client or the dashboard; only they change it."""


@dataclass(frozen=True)
class StoredSchedule:
    """A schedule as the store keeps it."""

    workflow: str
    schedule: Schedule
    """The times and options; its ``name`` is set."""
    source: ScheduleSource
    paused: bool
    next_tick: float
    """The next tick's nominal time (before jitter)."""
    created_at: float
    updated_at: float
    buffered: float | None = None
    """A tick waiting for the running run to finish (overlap ``buffer_one``)."""
    last_run_id: str | None = None
    timer_at: float | None = None
    """When its timer fires (None while paused)."""

    @property
    def name(self) -> str:
        assert self.schedule.name is not None
        return self.schedule.name


@dataclass(frozen=True)
class TickRecord:
    """One line of a schedule's history."""

    schedule: str
    outcome: TickOutcome
    nominal: float
    count: int
    run_id: str | None
    at: float


@dataclass(frozen=True)
class ScheduleFiring:
    """What one firing writes, in one transaction: the timer consumed, the runs
    created (idempotent on their keys), the history lines, the next timer.

    With ``timer_id`` None (a trigger or backfill by hand) the timer, the next
    tick and the buffer are left alone.
    """

    name: str
    at: float
    runs: tuple[tuple[float, Decision], ...]
    """(nominal time, the run's first decision) per run to start."""
    lines: tuple[TickLine, ...]
    timer_id: int | None = None
    next_tick: float = 0.0
    timer_at: float = 0.0
    buffered: float | None = None


@dataclass(frozen=True)
class Fired:
    created: tuple[Created, ...]
    """One per run of the firing, in order; ``created`` False for a tick whose run existed."""
