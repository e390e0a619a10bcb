"""Pause and resume: an operator stops a run from starting steps, then lets it go on.

A paused run (status ``paused``; not ``suspended``, which means a step failed
for good and waits for a person) lets the attempts that are running finish
and records their results, but every step that would start meanwhile -- the
next state's, a retry's, a compensation's -- is held (:attr:`Phase.HELD`,
``step_held``) instead of dispatched (:meth:`Transition.dispatch`). A task
already on its way to a worker when the pause lands is held by that worker
(:class:`StepHeldBack`) before its handler starts. Timers keep their time:
a wait, an approval's timeout or the run's deadline fire as usual, and what
they would start is held too. Resuming dispatches the held steps in the
order they were held. Cancelling a paused run ends the pause.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from legato.machine.commands import Rejection
from legato.machine.events import PauseRequested, ResumeRequested, StepHeldBack
from legato.machine.run import Pause, Phase
from legato.machine.vocabulary import HistoryKind

if TYPE_CHECKING:
    from legato.machine.transition import Transition


def apply(tx: Transition, event: PauseRequested | ResumeRequested | StepHeldBack) -> Rejection | None:
    match event:
        case PauseRequested():
            return pause(tx, event)
        case ResumeRequested():
            return resume(tx, event)
        case StepHeldBack():
            return hold(tx, event)


def pause(tx: Transition, event: PauseRequested) -> Rejection | None:
    if tx.paused is not None:
        return Rejection(f"run {tx.run.id} is paused already (by {tx.paused.actor})")
    tx.paused = Pause(event.actor, tx.now, event.reason)
    running = sorted(t.state for t in tx.tokens.values() if t.phase is Phase.RUNNING)
    tx.note(HistoryKind.OPERATOR_PAUSE, actor=event.actor, reason=event.reason, running=running)
    return None


def resume(tx: Transition, event: ResumeRequested) -> Rejection | None:
    if tx.paused is None:
        return Rejection(f"run {tx.run.id} is not paused")
    tx.paused = None
    held = sorted((t for t in tx.tokens.values() if t.phase is Phase.HELD), key=lambda t: t.since)
    tx.note(HistoryKind.OPERATOR_RESUME, actor=event.actor, released=[t.state for t in held])
    for token in held:
        tx.dispatch(tx.put(replace(token, phase=Phase.RUNNING, since=tx.now)))
    return None


def hold(tx: Transition, event: StepHeldBack) -> Rejection | None:
    """A worker has the task of a paused run in hand, its handler not started: hold it."""
    if tx.paused is None:
        return Rejection(f"run {tx.run.id} is not paused: its step may start")
    token = tx.tokens.get(event.seq)
    if (
        token is None
        or token.phase is not Phase.RUNNING
        or token.attempt != event.attempt
        or token.kind is not event.kind
    ):
        return Rejection(f"stale task: step #{event.seq} attempt {event.attempt} is not running")
    tx.dispatch(token)  # paused: this holds it
    return None
