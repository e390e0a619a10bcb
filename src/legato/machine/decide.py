"""The transition function: ``decide(workflow, run, event, now)``.

Pure: no I/O, no clock, no randomness (jitter is derived from the run id,
step and attempt). Given the same inputs it returns the same
:class:`Decision` -- the new run with its version one higher, the commands to
carry out and the history to append -- or a :class:`Rejection` when the event
is not legal for the run as it is, in which case nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, assert_never

from legato.machine import completion, pause
from legato.machine.child import UNDONE, child_state
from legato.machine.commands import Decision, Rejection
from legato.machine.definition import Priority, Workflow
from legato.machine.errors import ErrorInfo
from legato.machine.events import (
    CancelRequested,
    ChildEnded,
    CompensateRequested,
    CompletionReceived,
    Event,
    PauseRequested,
    ResumeRequested,
    RetryRequested,
    SignalReceived,
    SkipRequested,
    StepDeferred,
    StepFailed,
    StepHeldBack,
    StepSucceeded,
    TimerFired,
)
from legato.machine.map import failing
from legato.machine.policies import decide_retry, spread_for
from legato.machine.recovery import STUCK_PHASES, stuck, stuck_at
from legato.machine.run import ParentLink, Phase, Run, RunStatus, StepKind, Token
from legato.machine.signals import MAX_BUFFERED_SIGNALS, EarlySignal, awaited_signals
from legato.machine.states import Approval
from legato.machine.transition import Transition
from legato.machine.values import JSON
from legato.machine.vocabulary import DeadLetterStatus, HistoryKind, TimerPurpose


def start_run(
    workflow: Workflow,
    run_id: str,
    input: Mapping[str, JSON],
    now: float,
    *,
    idempotency_key: str | None = None,
    priority: Priority | None = None,
    trace_context: Mapping[str, str] | None = None,
    parent: ParentLink | None = None,
) -> Decision:
    """Create a run of ``workflow`` and enter its start state (``parent``: a child run's)."""
    level = priority if priority is not None else workflow.priority
    tx = Transition.start(workflow, run_id, input, now, level, idempotency_key, trace_context, parent)
    tx.enter(workflow.start, None, None)
    return tx.decision()


def decide(workflow: Workflow, run: Run, event: Event, now: float) -> Decision | Rejection:
    """Apply ``event`` to ``run``."""
    if (run.workflow, run.workflow_version) != workflow.key:
        return Rejection(
            f"run {run.id} belongs to {run.workflow} v{run.workflow_version}, "
            f"not {workflow.name} v{workflow.version}"
        )
    # A retry or a skip of a finished run that cannot be resumed is refused by
    # machine/recovery.py, which says why.
    if run.finished and not (_reopens(run, event) or isinstance(event, RetryRequested | SkipRequested)):
        return Rejection(_finished(run, event))
    tx = Transition(workflow, run, now)
    match event:
        case StepSucceeded():
            outcome = _step_succeeded(tx, event)
        case StepFailed():
            outcome = _step_failed(tx, event)
        case StepDeferred():
            outcome = _step_deferred(tx, event)
        case CompletionReceived():
            outcome = _completion(tx, event)
        case TimerFired():
            outcome = _timer_fired(tx, event)
        case SignalReceived():
            outcome = _signal(tx, event)
        case RetryRequested():
            outcome = _retry(tx, event)
        case SkipRequested():
            outcome = _skip(tx, event)
        case CancelRequested():
            outcome = _cancel(tx, event)
        case ChildEnded() | CompensateRequested():
            outcome = _child_event(tx, event)
        case PauseRequested() | ResumeRequested() | StepHeldBack():
            outcome = pause.apply(tx, event)
        case _:
            assert_never(event)
    if outcome is not None:
        return outcome
    return tx.decision()


def _reopens(run: Run, event: Event) -> bool:
    """A finished run takes only an operator's retry or skip (when it failed), or its
    parent's request to compensate it (a child run that succeeded)."""
    if run.status is RunStatus.FAILED:
        return isinstance(event, RetryRequested | SkipRequested)
    return run.status is RunStatus.SUCCEEDED and isinstance(event, CompensateRequested)


def _name(event: Event) -> str:
    return {
        StepSucceeded: "step results",
        StepFailed: "step results",
        StepDeferred: "step results",
        CompletionReceived: "completions",
        TimerFired: "timers",
        SignalReceived: "signals",
        RetryRequested: "retry",
        SkipRequested: "skip",
        CancelRequested: "cancel",
        PauseRequested: "pause",
        ResumeRequested: "resume",
        StepHeldBack: "step results",
        ChildEnded: "child outcomes",
        CompensateRequested: "compensation requests",
    }[type(event)]


def _finished(run: Run, event: Event) -> str:
    refusal = f"run {run.id} is {run.status.value}; a finished run takes no {_name(event)}"
    if isinstance(event, CancelRequested) and stuck(run):
        steps = ", ".join(sorted({t.state for t in stuck(run)}))
        return f"{refusal}: retry or skip its failed step ({steps}), or resolve its dead letter to leave it failed"
    return refusal


def _running(tx: Transition, seq: int, attempt: int, kind: StepKind) -> Token | Rejection:
    token = tx.tokens.get(seq)
    if (
        token is None
        or token.phase is not Phase.RUNNING
        or token.attempt != attempt
        or token.kind is not kind
    ):
        return Rejection(f"stale result: step #{seq} attempt {attempt} ({kind.value}) is not running")
    return token


def _timing(event: StepSucceeded | StepFailed) -> dict[str, Any]:
    """When the attempt ran, and how long it waited for flow-control limits first."""
    timing: dict[str, Any] = {}
    if event.started_at is not None and event.finished_at is not None:
        timing = {
            "started_at": event.started_at,
            "finished_at": event.finished_at,
            "duration": event.finished_at - event.started_at,
        }
    if event.waited:
        timing["waited"] = dict(event.waited)
    return timing


def _step_succeeded(tx: Transition, event: StepSucceeded) -> Rejection | None:
    token = _running(tx, event.seq, event.attempt, event.kind)
    if isinstance(token, Rejection):
        return token
    timing = _timing(event)
    if token.kind is StepKind.COMPENSATION:
        tx.compensation_succeeded(token, event.output, timing)
        return None
    tx.note(HistoryKind.STEP_SUCCEEDED, token.state, token.attempt, seq=token.seq, **timing)
    if token.draining:
        tx.drained(token, succeeded=True)
        return None
    tx.advance(token, event.output)
    return None


def _step_deferred(tx: Transition, event: StepDeferred) -> Rejection | None:
    token = _running(tx, event.seq, event.attempt, event.kind)
    if isinstance(token, Rejection):
        return token
    completion.defer(tx, token, event)
    return None


def _completion(tx: Transition, event: CompletionReceived) -> Rejection | None:
    outcome = completion.received(tx, event)
    if isinstance(outcome, StepSucceeded):
        return _step_succeeded(tx, outcome)
    if isinstance(outcome, StepFailed):
        return _step_failed(tx, outcome)
    return outcome


def _step_failed(tx: Transition, event: StepFailed) -> Rejection | None:
    token = _running(tx, event.seq, event.attempt, event.kind)
    if isinstance(token, Rejection):
        return token
    compensation = token.kind is StepKind.COMPENSATION
    kind = HistoryKind.COMPENSATION_FAILED if compensation else HistoryKind.STEP_FAILED
    timing = _timing(event)
    if token.draining:
        tx.note(
            kind,
            token.state,
            token.attempt,
            seq=token.seq,
            error=event.error.to_json(),
            outcome="dropped while unwinding",
            **timing,
        )
        tx.drained(token, succeeded=False)
        return None
    task = tx.workflow.step(token.state)
    policy = tx.workflow.retry_for(task, compensation)
    verdict = decide_retry(
        policy,
        token.attempts_used,
        event.error,
        spread_for(tx.run.id, token.seq, token.attempt),
        event.retry_after,
        # An item of a failing map drains: its attempt ends it, whatever the policy.
        event.non_retryable or failing(tx, token),
    )
    if verdict.delay is None:
        assert verdict.give_up is not None
        tx.note(
            kind,
            token.state,
            token.attempt,
            seq=token.seq,
            error=event.error.to_json(),
            outcome=verdict.give_up.value,
            **timing,
        )
        tx.step_failed_for_good(token, event.error, verdict.give_up.value)
        return None
    tx.note(
        kind,
        token.state,
        token.attempt,
        seq=token.seq,
        error=event.error.to_json(),
        outcome="retry",
        delay=verdict.delay,
        **timing,
    )
    if verdict.delay <= 0:
        retried = tx.put(replace(token, attempt=token.attempt + 1, since=tx.now))
        tx.note(HistoryKind.RETRY_SCHEDULED, token.state, retried.attempt, delay=0.0)
        tx.dispatch(retried)
    else:
        wake_at = tx.now + verdict.delay
        waiting = tx.put(
            replace(
                token,
                phase=Phase.RETRY_WAIT,
                attempt=token.attempt + 1,
                since=tx.now,
                wake_at=wake_at,
            )
        )
        tx.note(HistoryKind.RETRY_SCHEDULED, token.state, waiting.attempt, delay=verdict.delay, at=wake_at)
        tx.schedule(waiting, TimerPurpose.RETRY, wake_at)
    return None


def _timer_fired(tx: Transition, event: TimerFired) -> Rejection | None:
    purpose = event.purpose
    match purpose:
        case TimerPurpose.DEADLINE:
            if tx.run.deadline is None or tx.sla_met is not None:
                return Rejection("no deadline is pending")
            tx.deadline_passed()
        case TimerPurpose.RETRY:
            token = _timed(tx, event, Phase.RETRY_WAIT)
            if isinstance(token, Rejection):
                return token
            if token.attempt != event.attempt:
                return Rejection(f"stale timer {event.key}: attempt {event.attempt} is not pending")
            running = tx.put(replace(token, phase=Phase.RUNNING, since=tx.now, wake_at=None))
            tx.note(HistoryKind.RETRY_STARTED, token.state, running.attempt, seq=token.seq)
            tx.dispatch(running)
        case TimerPurpose.WAIT:
            token = _timed(tx, event, Phase.WAITING)
            if isinstance(token, Rejection):
                return token
            tx.note(HistoryKind.WAIT_ELAPSED, token.state, until=token.wake_at)
            tx.advance(replace(token, phase=Phase.RUNNING, wake_at=None), None)
        case TimerPurpose.APPROVAL:
            token = _timed(tx, event, Phase.AWAITING_SIGNAL)
            if isinstance(token, Rejection):
                return token
            _approval_timed_out(tx, token)
        case TimerPurpose.SCHEDULE:
            # A schedule's timer has no run: the timer poller hands it to the schedules.
            return Rejection(f"timer {event.key} is a schedule's; it starts runs, it fires in none")
        case TimerPurpose.HEARTBEAT:
            return _lease_ran_out(tx, event)
        case TimerPurpose.COMPLETION:
            failed = completion.timed_out(tx, event)
            return failed if isinstance(failed, Rejection) else _step_failed(tx, failed)
        case _:
            assert_never(purpose)
    return None


def _lease_ran_out(tx: Transition, event: TimerFired) -> Rejection | None:
    """A leased step's worker stopped renewing: the attempt failed (the policy retries it)."""
    token = _timed(tx, event, Phase.RUNNING)
    if isinstance(token, Rejection):
        return token
    if token.attempt != event.attempt:
        return Rejection(f"stale timer {event.key}: attempt {event.attempt} is not running")
    timeout = tx.workflow.task(token.state).heartbeat_timeout
    tx.note(HistoryKind.LEASE_EXPIRED, token.state, token.attempt, seq=token.seq, timeout=timeout)
    error = ErrorInfo.of(
        "HeartbeatTimeout",
        f"attempt {token.attempt} of {token.state!r} was not renewed for {timeout}s: its worker is gone",
    )
    return _step_failed(tx, StepFailed(token.seq, token.attempt, error, token.kind))


def _timed(tx: Transition, event: TimerFired, phase: Phase) -> Token | Rejection:
    """The token a step timer fired for, if it still waits on that timer."""
    token = tx.tokens.get(event.seq) if event.seq is not None else None
    if token is None or token.phase is not phase:
        return Rejection(f"stale timer {event.key}")
    return token


def _approval_timed_out(tx: Transition, token: Token) -> None:
    state = tx.workflow.state(token.state)
    assert isinstance(state, Approval)
    tx.note(HistoryKind.APPROVAL_TIMED_OUT, token.state, signal=state.signal)
    # The timer is the one firing: drop the token without cancelling it.
    quiet = replace(token, phase=Phase.RUNNING, wake_at=None)
    tx.put(quiet)
    tx.drop(quiet)
    if state.on_timeout is not None:
        tx.enter(state.on_timeout, token.parent, token.branch)
    else:
        # Not a step, so nothing to resume: the run fails outright.
        tx.fail_run(ErrorInfo.of("ApprovalTimeout", f"no {state.signal!r} signal within {state.timeout}s"))


def _signal(tx: Transition, event: SignalReceived) -> Rejection | None:
    waiting = [
        t for t in tx.tokens.values() if t.phase is Phase.AWAITING_SIGNAL and _signal_of(tx, t) == event.name
    ]
    if not waiting:
        return _early(tx, event)
    tx.note(
        HistoryKind.SIGNAL_RECEIVED,
        waiting[0].state,
        actor=event.actor,
        signal=event.name,
        data=dict(event.data),
    )
    if event.data:
        tx.merge(dict(event.data))
    for token in waiting:
        tx.advance(token, None)
    return None


def _early(tx: Transition, event: SignalReceived) -> Rejection | None:
    """A signal the run does not wait for now: keep it for later, or refuse it."""
    expected = sorted({s for t in tx.tokens.values() if (s := _signal_of(tx, t))})
    hint = f"it waits for {', '.join(map(repr, expected))}" if expected else "it waits for no signal now"
    refusal = f"run {tx.run.id} is not waiting for signal {event.name!r}; {hint}"
    if event.early is EarlySignal.REFUSE:
        return Rejection(refusal)
    if event.name not in awaited_signals(tx.workflow):
        return Rejection(f"{refusal}, and no approval of {tx.workflow.name!r} ever does")
    if tx.compensating:
        return Rejection(f"{refusal}, and it is compensating")
    if len(tx.signals) >= MAX_BUFFERED_SIGNALS:
        return Rejection(f"{refusal}, and it keeps {MAX_BUFFERED_SIGNALS} signals already")
    tx.keep_signal(event.name, event.data, event.actor)
    return None


def _signal_of(tx: Transition, token: Token) -> str | None:
    if token.phase is not Phase.AWAITING_SIGNAL:
        return None
    state = tx.workflow.state(token.state)
    return state.signal if isinstance(state, Approval) else None


def _stuck(
    tx: Transition, state: str | None, verb: str, dead_letter: int | None = None
) -> list[Token] | Rejection:
    """The tokens an operator retry or skip acts on: suspended, or the failed one."""
    found = stuck_at(tx.run, state, verb)
    if isinstance(found, str):
        if dead_letter is not None:
            found = f"{found}; resolve dead letter {dead_letter} to close it without a replay"
        return Rejection(found)
    return [tx.tokens[t.seq] for t in found]


def _retry(tx: Transition, event: RetryRequested) -> Rejection | None:
    stuck = _stuck(tx, event.state, "a retry", event.dead_letter)
    if isinstance(stuck, Rejection):
        return stuck
    if tx.run.status is RunStatus.FAILED:
        tx.resume(event.actor)
    tx.close_dead_letters(stuck, DeadLetterStatus.REPLAYED, event.actor)
    if event.data:
        tx.merge(dict(event.data))
    for token in stuck:
        attempt = token.attempt + 1
        retried = tx.put(
            replace(
                token,
                phase=Phase.RUNNING,
                attempt=attempt,
                budget_from=attempt,
                since=tx.now,
                error=None,
            )
        )
        tx.note(
            HistoryKind.OPERATOR_RETRY,
            token.state,
            attempt,
            actor=event.actor,
            dead_letter=event.dead_letter,
            data=dict(event.data or {}),
        )
        tx.dispatch(retried)
    return None


def _skip(tx: Transition, event: SkipRequested) -> Rejection | None:
    stuck = _stuck(tx, event.state, "a skip")
    if isinstance(stuck, Rejection):
        return stuck
    if len(stuck) > 1:
        names = ", ".join(sorted({t.state for t in stuck}))
        return Rejection(f"run {tx.run.id} has several stuck steps ({names}); name the one to skip")
    if tx.run.status is RunStatus.FAILED:
        tx.resume(event.actor)
    tx.close_dead_letters(stuck, DeadLetterStatus.RESOLVED, event.actor)
    token = stuck[0]
    tx.note(
        HistoryKind.OPERATOR_SKIP,
        token.state,
        token.attempt,
        actor=event.actor,
        output=dict(event.output or {}),
    )
    if token.kind is StepKind.COMPENSATION:
        tx.drop(token)
        tx.continue_unwinding()
    else:
        tx.advance(
            replace(token, phase=Phase.RUNNING),
            dict(event.output) if event.output else None,
            skipped=True,
        )
    return None


def _cancel(tx: Transition, event: CancelRequested) -> Rejection | None:
    if tx.compensating and event.compensate:
        return Rejection(
            f"run {tx.run.id} is already compensating; retry or skip its failed compensation, "
            "or cancel with --no-compensate to abandon the compensations left"
        )
    # Its stuck steps will never be retried now: their dead letters close.
    tx.close_dead_letters(
        [t for t in tx.tokens.values() if t.phase in STUCK_PHASES], DeadLetterStatus.RESOLVED, event.actor
    )
    tx.cancel(event.actor, event.compensate, event.reason)
    return None


def _child_event(tx: Transition, event: ChildEnded | CompensateRequested) -> Rejection | None:
    """Between a parent and its child run (machine/child.py)."""
    if isinstance(event, ChildEnded):
        return _child_ended(tx, event)
    return _compensate_requested(tx, event)


def _child_ended(tx: Transition, event: ChildEnded) -> Rejection | None:
    """A child run ended: the waiting step succeeded or failed (machine/child.py)."""
    token = _running(tx, event.seq, event.attempt, event.kind)
    if isinstance(token, Rejection):
        return Rejection(f"stale child outcome: {token.reason}")
    if child_state(tx, token) is None or token.child != event.child:
        return Rejection(f"step #{event.seq} does not wait for child run {event.child}")
    if token.kind is StepKind.COMPENSATION:
        if event.status in UNDONE:
            tx.compensation_succeeded(token, None, {"child": event.child})
            return None
        error = _child_error(event)
        tx.note(
            HistoryKind.COMPENSATION_FAILED, token.state, token.attempt, seq=token.seq, error=error.to_json()
        )
        tx.suspend(token, error, "child compensation failed")
        return None
    if event.status is RunStatus.SUCCEEDED:
        tx.note(HistoryKind.CHILD_SUCCEEDED, token.state, token.attempt, seq=token.seq, child=event.child)
        tx.note(HistoryKind.STEP_SUCCEEDED, token.state, token.attempt, seq=token.seq)
        if token.draining:
            tx.drained(token, succeeded=True)
        else:
            tx.advance(token, event.output)
        return None
    error = _child_error(event)
    tx.note(
        HistoryKind.CHILD_FAILED,
        token.state,
        token.attempt,
        seq=token.seq,
        child=event.child,
        status=event.status.value,
    )
    return _step_failed(tx, StepFailed(token.seq, token.attempt, error, token.kind))


def _child_error(event: ChildEnded) -> ErrorInfo:
    cause = f": {event.error.type}: {event.error.message}" if event.error is not None else ""
    return ErrorInfo.of("ChildFailed", f"child run {event.child} ended {event.status.value}{cause}")


def _compensate_requested(tx: Transition, event: CompensateRequested) -> Rejection | None:
    if tx.run.status is not RunStatus.SUCCEEDED:
        return Rejection(
            f"run {tx.run.id} is {tx.run.status.value}; only a succeeded child run can be compensated"
        )
    tx.compensate_for_parent(event.parent)
    return None
