"""The words the core and the shell share: history kinds and timer purposes.

Both are string-valued enums: a member *is* its stored string, so history rows,
timer rows and the SQL that reads them are unchanged, and encoding a member
(orjson, json, asyncpg, sqlite3) writes the plain string. This module is the
only place either vocabulary is spelled out; everything else names a member or
one of the sets below (``tests/unit/test_vocabulary.py`` holds the rest of the
tree to that).

The sets are the groups consumers ask about: metrics and tracing (operator
actions, timer firings), the dashboard (progress, trouble) and the insights
queries (step outcomes), whose SQL is built from them.
"""

from __future__ import annotations

from enum import StrEnum


class HistoryKind(StrEnum):
    """What one line of a run's history records."""

    RUN_STARTED = "run_started"
    RUN_RESUMED = "run_resumed"
    RUN_FINISHED = "run_finished"
    SLA_MISSED = "sla_missed"

    STEP_SCHEDULED = "step_scheduled"
    STEP_SUCCEEDED = "step_succeeded"
    STEP_FAILED = "step_failed"
    STEP_INTERRUPTED = "step_interrupted"
    """The run was cancelled or failed while this step ran: its handler is interrupted."""
    RETRY_SCHEDULED = "retry_scheduled"
    RETRY_STARTED = "retry_started"
    LEASE_EXPIRED = "lease_expired"
    """A leased step's worker stopped renewing its lease (its heartbeat timer fired)."""
    DEAD_LETTERED = "dead_lettered"
    SUSPENDED = "suspended"

    CHOICE_MADE = "choice_made"
    PARALLEL_STARTED = "parallel_started"
    BRANCH_COMPLETED = "branch_completed"
    JOINED = "joined"
    MAP_STARTED = "map_started"
    ITEM_SUCCEEDED = "item_succeeded"
    ITEM_FAILED = "item_failed"
    ITEM_STOPPED = "item_stopped"
    """An item of a failing map finished its step and went no further."""
    MAP_FAILING = "map_failing"
    """More items failed than tolerated: none starts any more, the running ones drain."""
    CHILD_STARTED = "child_started"
    """A child state created its child run (``child`` in the detail), in this transaction."""
    CHILD_SUCCEEDED = "child_succeeded"
    CHILD_FAILED = "child_failed"
    """The child run ended failed, compensated or cancelled: the step failed."""
    CHILD_CANCELLED = "child_cancelled"
    """This run ended or unwinds while its child ran: the child is told to cancel."""
    CHILD_LEFT = "child_left"
    """This run ended or unwinds while its child ran, and leaves it running (``parent_close``)."""
    COMPENSATION_REQUESTED = "compensation_requested"
    """Written in a child run: its parent unwinds and asks it to undo its completed steps."""
    WAITING = "waiting"
    WAIT_ELAPSED = "wait_elapsed"
    AWAITING_SIGNAL = "awaiting_signal"
    SIGNAL_RECEIVED = "signal_received"
    SIGNAL_BUFFERED = "signal_buffered"
    """A signal came before the run waited for it; it is kept until an approval takes it."""
    APPROVAL_TIMED_OUT = "approval_timed_out"
    STATE_REACHED = "state_reached"

    COMPENSATION_STARTED = "compensation_started"
    COMPENSATION_SCHEDULED = "compensation_scheduled"
    COMPENSATION_SUCCEEDED = "compensation_succeeded"
    COMPENSATION_FAILED = "compensation_failed"

    OPERATOR_RETRY = "operator_retry"
    OPERATOR_SKIP = "operator_skip"
    OPERATOR_CANCEL = "operator_cancel"
    OPERATOR_PAUSE = "operator_pause"
    """A person paused the run: no new step starts until it is resumed (machine/pause.py)."""
    OPERATOR_RESUME = "operator_resume"
    """A person resumed a paused run: the steps held back are dispatched."""
    STEP_HELD = "step_held"
    """A step of a paused run was due to start; it waits for the run's resume."""

    COMPLETION_AWAITED = "completion_awaited"
    """The handler handed the step's completion to a token (machine/completion.py)."""
    COMPLETION_RECEIVED = "completion_received"
    """The step's token was completed or failed from outside."""
    COMPLETION_TIMED_OUT = "completion_timed_out"
    """Nobody completed the step's token in time: the attempt failed."""

    REJECTED = "rejected"
    """Written by the store, not by ``decide``: an event the run refused."""


class TimerPurpose(StrEnum):
    """Why a durable timer exists, and so what its firing means to ``decide``."""

    RETRY = "retry"
    WAIT = "wait"
    APPROVAL = "approval"
    DEADLINE = "deadline"
    SCHEDULE = "schedule"
    """A schedule's next tick: a timer of no run, that starts one (legato.scheduling)."""
    HEARTBEAT = "heartbeat"
    """A leased step's lease ran out (its ``fire_at`` moves with every renewal)."""
    COMPLETION = "completion"
    """A step waiting for its completion token ran out of time."""


class CompletionOutcome(StrEnum):
    """How a completion token was settled (the ``outcome`` of its row)."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


class TickOutcome(StrEnum):
    """What became of a schedule's tick, as the schedule's history (``schedule_ticks``) records it."""

    STARTED = "started"
    MISSED = "missed"
    """Found due beyond the catch-up window: never fired (``count`` ticks in one line)."""
    SKIPPED_OVERLAP = "skipped_overlap"
    BUFFERED = "buffered"
    CANCELLED_OTHER = "cancelled_other"
    """The running run was cancelled to make room (the next line starts the tick)."""
    TRIGGERED = "triggered"
    """Started by hand (``legato schedule trigger`` / backfill), not by the clock."""


class DeadLetterStatus(StrEnum):
    """Where a dead letter stands: open until an operator deals with it."""

    OPEN = "open"
    REPLAYED = "replayed"
    """Its step was tried again (``dlq replay``, or ``retry`` of its run), or its message published again."""
    RESOLVED = "resolved"
    """Closed without a replay: by ``dlq resolve``, or because its step was skipped or its run cancelled."""


K = HistoryKind

STEP_SUCCESSES = frozenset({K.STEP_SUCCEEDED, K.COMPENSATION_SUCCEEDED})
"""An attempt (of a step or of a compensation) that succeeded."""
STEP_FAILURES = frozenset({K.STEP_FAILED, K.COMPENSATION_FAILED})
"""An attempt that failed; its detail holds the ``error``."""
STEP_OUTCOMES = STEP_SUCCESSES | STEP_FAILURES
"""One line per finished attempt, with its timing: what the step statistics read."""

COMPENSATION = frozenset(
    {K.COMPENSATION_STARTED, K.COMPENSATION_SCHEDULED, K.COMPENSATION_SUCCEEDED, K.COMPENSATION_FAILED}
)
"""The saga unwinding; the outcomes among them are compensation attempts."""
COMPENSATION_OUTCOMES = COMPENSATION & STEP_OUTCOMES

OPERATOR_ACTIONS: dict[HistoryKind, str] = {
    K.OPERATOR_RETRY: "retry",
    K.OPERATOR_SKIP: "skip",
    K.OPERATOR_CANCEL: "cancel",
    K.OPERATOR_PAUSE: "pause",
    K.OPERATOR_RESUME: "resume",
    K.SIGNAL_RECEIVED: "signal",
    K.COMPLETION_RECEIVED: "complete",
}
"""A person (or their system) acted on the run, by the action's label."""

TIMER_FIRINGS: dict[HistoryKind, TimerPurpose] = {
    K.RETRY_STARTED: TimerPurpose.RETRY,
    K.APPROVAL_TIMED_OUT: TimerPurpose.APPROVAL,
    K.SLA_MISSED: TimerPurpose.DEADLINE,
    K.LEASE_EXPIRED: TimerPurpose.HEARTBEAT,
    K.COMPLETION_TIMED_OUT: TimerPurpose.COMPLETION,
}
"""Lines written when a durable timer fired, by the timer's purpose. (A wait's
``wait_elapsed`` is not among them: a wait already due never had a timer.)"""

CHILDREN = frozenset({K.CHILD_STARTED, K.CHILD_SUCCEEDED, K.CHILD_FAILED, K.CHILD_CANCELLED, K.CHILD_LEFT})
"""Lines about a child run, each naming it (``child`` in the detail): what links parent to child."""

TROUBLE = frozenset({K.DEAD_LETTERED, K.SUSPENDED})
"""A step failed for good: a person may have to look."""

PROGRESS = frozenset(
    {
        K.STEP_SUCCEEDED,
        K.STATE_REACHED,
        K.CHOICE_MADE,
        K.JOINED,
        K.CHILD_SUCCEEDED,
        K.WAIT_ELAPSED,
        K.SIGNAL_RECEIVED,
        K.OPERATOR_SKIP,
    }
)
"""The run has been through the line's state (the dashboard marks it visited)."""

del K
