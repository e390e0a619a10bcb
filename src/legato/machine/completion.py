"""Completion from outside: a step whose handler handed its completion to a token.

The handler returns ``CompleteLater`` (legato/completion.py): the worker tells
the run :class:`StepDeferred` with the token's digest, and the attempt waits
(:attr:`Phase.AWAITING_COMPLETION`), on a durable timer when it has a timeout.
It ends in exactly one of three ways, each a transition under the run's
optimistic lock, so two of them racing cannot both win:

- the token is completed: the attempt succeeded with the given output;
- the token is failed: the attempt failed, and the retry policy decides;
- the timer fires first: the attempt failed with ``CompletionTimeout``.

The token's row is written (:class:`AwaitCompletion`) in the transaction that
records the deferral, and marked used (:class:`SettleCompletion`) in the one
that ends the wait, so a token is single-use and a second completion can be
told what became of the first.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from legato.machine.commands import AwaitCompletion, CancelTimer, Rejection, SettleCompletion
from legato.machine.errors import ErrorInfo
from legato.machine.events import CompletionReceived, StepDeferred, StepFailed, StepSucceeded, TimerFired
from legato.machine.run import Phase, Token
from legato.machine.vocabulary import CompletionOutcome, HistoryKind, TimerPurpose

if TYPE_CHECKING:
    from legato.machine.transition import Transition

COMPLETION_TIMEOUT_ERROR = "CompletionTimeout"


def defer(tx: Transition, token: Token, event: StepDeferred) -> None:
    """A running attempt handed its completion to a token: wait for it."""
    wake_at = tx.now + event.timeout if event.timeout is not None else None
    waiting = tx.put(replace(token, phase=Phase.AWAITING_COMPLETION, wake_at=wake_at, since=tx.now))
    tx.commands.append(AwaitCompletion(token.seq, token.state, token.attempt, event.digest, wake_at))
    timing: dict[str, Any] = {}
    if event.started_at is not None and event.finished_at is not None:
        timing = {"started_at": event.started_at, "finished_at": event.finished_at}
    tx.note(
        HistoryKind.COMPLETION_AWAITED,
        token.state,
        token.attempt,
        seq=token.seq,
        timeout_at=wake_at,
        **timing,
    )
    if wake_at is not None:
        tx.schedule(waiting, TimerPurpose.COMPLETION, wake_at)


def awaiting(tx: Transition, seq: int | None, attempt: int | None, what: str) -> Token | Rejection:
    """The token of the attempt that waits for its completion, or why there is none."""
    token = tx.tokens.get(seq) if seq is not None else None
    if token is None or token.phase is not Phase.AWAITING_COMPLETION or token.attempt != attempt:
        now = f"at {token.state!r} ({token.phase.value})" if token is not None else "past that step"
        return Rejection(
            f"{what}: run {tx.run.id} no longer waits for step #{seq} attempt {attempt} "
            f"to be completed (it is {now})"
        )
    return token


def received(tx: Transition, event: CompletionReceived) -> StepSucceeded | StepFailed | Rejection:
    """The token was completed or failed: settle it; the returned event is the attempt's outcome."""
    token = awaiting(tx, event.seq, event.attempt, "completion refused")
    if isinstance(token, Rejection):
        return token
    if token.timer_key is not None:
        tx.commands.append(CancelTimer(token.timer_key))
    outcome = CompletionOutcome.COMPLETED if event.error is None else CompletionOutcome.FAILED
    tx.commands.append(SettleCompletion(token.seq, token.attempt, outcome, event.actor))
    tx.note(
        HistoryKind.COMPLETION_RECEIVED,
        token.state,
        token.attempt,
        actor=event.actor,
        seq=token.seq,
        outcome=outcome.value,
    )
    tx.put(replace(token, phase=Phase.RUNNING, wake_at=None))
    if event.error is None:
        return StepSucceeded(token.seq, token.attempt, event.output, token.kind)
    return StepFailed(token.seq, token.attempt, event.error, token.kind, non_retryable=event.non_retryable)


def timed_out(tx: Transition, event: TimerFired) -> StepFailed | Rejection:
    """Nobody completed the token in time: the attempt failed (the retry policy decides)."""
    token = awaiting(tx, event.seq, event.attempt, f"stale timer {event.key}")
    if isinstance(token, Rejection):
        return token
    tx.commands.append(SettleCompletion(token.seq, token.attempt, CompletionOutcome.TIMED_OUT))
    tx.note(
        HistoryKind.COMPLETION_TIMED_OUT,
        token.state,
        token.attempt,
        seq=token.seq,
        waited=tx.now - token.since,
    )
    # The timer is the one firing: no cancel.
    tx.put(replace(token, phase=Phase.RUNNING, wake_at=None))
    error = ErrorInfo.of(
        COMPLETION_TIMEOUT_ERROR,
        f"attempt {token.attempt} of {token.state!r}: its completion token was not completed in time",
    )
    return StepFailed(token.seq, token.attempt, error, token.kind)
