"""Hooks for whoever watches the engine (metrics, tracing, tests).

An observer subclasses :class:`Observer` and overrides the hooks it cares
about. Every hook takes one frozen dataclass (``applied(AppliedInput(...))``),
so a field can be added to an input without breaking any observer, and
returns nothing -- except :meth:`Observer.message_headers`, which adds to the
messages of a transition. Hooks run inline on the hot path: they must be cheap
and must not raise.

A hook that no observer overrides costs nothing on the hot path: the engine
asks :meth:`Observer.overrides` once and then does not even build its input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from legato.machine.commands import Decision
from legato.machine.run import Run
from legato.machine.schedules import TickLine

_NO_HEADERS: Mapping[str, str] = {}


@dataclass(frozen=True, slots=True)
class MessageHeadersInput:
    run: Run
    """The run as the transition leaves it (not committed yet)."""


@dataclass(frozen=True, slots=True)
class AppliedInput:
    decision: Decision
    """The committed decision: the new run, its history records and commands."""
    created: bool
    """True when this transition started the run."""


@dataclass(frozen=True, slots=True)
class RejectedInput:
    run: Run
    """The run as it is (unchanged)."""
    event: str
    """The refused event's type name (``StepSucceeded``, ``TaskMessage``, ``SignalReceived``...)."""
    reason: str


@dataclass(frozen=True, slots=True)
class ConflictInput:
    run_id: str


@dataclass(frozen=True, slots=True)
class PoisonedInput:
    queue: str
    """The queue the message came from."""
    reason: str


@dataclass(frozen=True, slots=True)
class RateLimitWaitedInput:
    limit: str
    """The rate limit's name."""
    seconds: float
    """The attempt's whole wait for a token of that limit."""


@dataclass(frozen=True, slots=True)
class RetentionRanInput:
    removed: Mapping[str, int]
    """Rows removed, by table (runs, history, timers, outbox, dead_letters, retired_keys)."""
    seconds: float
    """How long the pass took."""


@dataclass(frozen=True, slots=True)
class ScheduleFiredInput:
    schedule: str
    workflow: str
    lines: tuple[TickLine, ...]
    """What became of each tick this firing handled (started, missed, skipped...)."""
    lag: float | None
    """Seconds between the due tick's nominal time and its firing, if one was due."""
    next_fire_at: float
    """When the schedule's timer fires next."""


class Observer:
    """Does nothing on every hook; subclass it and override the hooks you need."""

    def message_headers(self, headers: MessageHeadersInput) -> Mapping[str, str]:
        """Headers for the messages a transition publishes (trace context).

        Fires once per transition, before it is committed; the headers are
        stored with its outbox rows. Headers the caller of the engine gives win.
        """
        return _NO_HEADERS

    def applied(self, applied: AppliedInput) -> None:
        """Fires once per committed transition, right after the commit and before
        its messages are published (``created``: the transition started the run)."""

    def rejected(self, rejected: RejectedInput) -> None:
        """Fires when an event is refused (a stale or duplicate task message, an
        action the run's state does not allow), after the refusal is recorded in
        the run's history. The run did not change."""

    def conflict(self, conflict: ConflictInput) -> None:
        """Fires when a commit loses the optimistic-lock race (another worker moved
        the run); the engine reloads the run and decides again."""

    def poisoned(self, poisoned: PoisonedInput) -> None:
        """Fires when a message that cannot be processed (malformed, unknown run
        or workflow) has been recorded as a dead letter and acked."""

    def rate_limit_waited(self, waited: RateLimitWaitedInput) -> None:
        """Fires once per step attempt that had to wait for a rate limit's token,
        when the attempt is admitted (just before its handler), with its whole
        wait for that limit."""

    def retention_ran(self, ran: RetentionRanInput) -> None:
        """Fires after each retention pass this process ran (docs/retention.md)."""

    def schedule_fired(self, fired: ScheduleFiredInput) -> None:
        """Fires once per firing of a schedule's timer that this process committed
        (another replica's firing of the same tick does not), after the commit."""

    def overrides(self, hook: Callable[..., Any]) -> bool:
        """Whether this observer does anything on ``hook`` (given as ``Observer.applied``).

        Lets a caller on the hot path skip building the hook's input when
        nobody listens.
        """
        return getattr(type(self), hook.__name__) is not hook


class Observers(Observer):
    """Fan one hook call out to several observers, in order; the same input goes to each."""

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        # A tuple, fixed at construction: callers decide once what is overridden.
        self.observers = tuple(observers)

    def overrides(self, hook: Callable[..., Any]) -> bool:
        return any(observer.overrides(hook) for observer in self.observers)

    def message_headers(self, headers: MessageHeadersInput) -> Mapping[str, str]:
        merged: dict[str, str] = {}
        for observer in self.observers:
            merged.update(observer.message_headers(headers))
        return merged

    def applied(self, applied: AppliedInput) -> None:
        for observer in self.observers:
            observer.applied(applied)

    def rejected(self, rejected: RejectedInput) -> None:
        for observer in self.observers:
            observer.rejected(rejected)

    def conflict(self, conflict: ConflictInput) -> None:
        for observer in self.observers:
            observer.conflict(conflict)

    def poisoned(self, poisoned: PoisonedInput) -> None:
        for observer in self.observers:
            observer.poisoned(poisoned)

    def schedule_fired(self, fired: ScheduleFiredInput) -> None:
        for observer in self.observers:
            observer.schedule_fired(fired)

    def rate_limit_waited(self, waited: RateLimitWaitedInput) -> None:
        for observer in self.observers:
            observer.rate_limit_waited(waited)

    def retention_ran(self, ran: RetentionRanInput) -> None:
        for observer in self.observers:
            observer.retention_ran(ran)
