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
from typing import Any

from legato.machine.commands import Decision, Rejection, ScheduleTimer
from legato.machine.definition import Priority, Workflow
from legato.machine.errors import ErrorInfo
from legato.machine.events import (
    CancelRequested,
    Event,
    RetryRequested,
    SignalReceived,
    SkipRequested,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from legato.machine.policies import decide_retry, spread_for
from legato.machine.run import CompletedStep, Phase, Run, RunStatus, StepKind, Token
from legato.machine.states import Approval
from legato.machine.transition import Transition
from legato.machine.values import JSON


def start_run(
    workflow: Workflow,
    run_id: str,
    input: Mapping[str, JSON],
    now: float,
    *,
    idempotency_key: str | None = None,
    priority: Priority | None = None,
    trace_context: Mapping[str, str] | None = None,
) -> Decision:
    """Create a run of ``workflow`` and enter its start state."""
    level = priority if priority is not None else workflow.priority
    deadline = now + workflow.sla if workflow.sla is not None else None
    pending = Run(
        id=run_id,
        workflow=workflow.name,
        workflow_version=workflow.version,
        status=RunStatus.RUNNING,
        version=0,
        input=dict(input),
        data=dict(input),
        created_at=now,
        updated_at=now,
        priority=int(level),
        idempotency_key=idempotency_key,
        trace_context=trace_context,
        deadline=deadline,
    )
    tx = Transition(workflow, pending, now)
    tx.note("run_started", workflow=workflow.name, version=workflow.version, priority=level.name.lower())
    if deadline is not None:
        tx.commands.append(ScheduleTimer("deadline", deadline, "deadline"))
    tx.enter(workflow.start, None, None)
    return tx.decision()


def decide(workflow: Workflow, run: Run, event: Event, now: float) -> Decision | Rejection:
    """Apply ``event`` to ``run``."""
    if (run.workflow, run.workflow_version) != workflow.key:
        return Rejection(
            f"run {run.id} belongs to {run.workflow} v{run.workflow_version}, "
            f"not {workflow.name} v{workflow.version}"
        )
    resumable = run.status is RunStatus.FAILED and isinstance(event, RetryRequested | SkipRequested)
    if run.finished and not resumable:
        return Rejection(f"run {run.id} is {run.status.value}; a finished run takes no {_name(event)}")
    tx = Transition(workflow, run, now)
    match event:
        case StepSucceeded():
            outcome = _step_succeeded(tx, event)
        case StepFailed():
            outcome = _step_failed(tx, event)
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
    if outcome is not None:
        return outcome
    return tx.decision()


def _name(event: Event) -> str:
    return {
        StepSucceeded: "step results",
        StepFailed: "step results",
        TimerFired: "timers",
        SignalReceived: "signals",
        RetryRequested: "retry",
        SkipRequested: "skip",
        CancelRequested: "cancel",
    }[type(event)]


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
        tx.note("compensation_succeeded", token.state, token.attempt, seq=token.seq, **timing)
        tx.merge(event.output)
        tx.drop(token)
        tx.compensated += 1
        tx.continue_unwinding()
        return None
    tx.note("step_succeeded", token.state, token.attempt, seq=token.seq, **timing)
    if token.draining:
        # The run is unwinding; this step's effect happened, so it is undone too.
        task = tx.workflow.task(token.state)
        if task.compensate is not None:
            tx.completed.append(CompletedStep(token.state, token.seq))
        tx.drop(token)
        tx.continue_unwinding()
        return None
    tx.advance(token, event.output)
    return None


def _step_failed(tx: Transition, event: StepFailed) -> Rejection | None:
    token = _running(tx, event.seq, event.attempt, event.kind)
    if isinstance(token, Rejection):
        return token
    compensation = token.kind is StepKind.COMPENSATION
    kind = "compensation_failed" if compensation else "step_failed"
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
        tx.drop(token)
        tx.continue_unwinding()
        return None
    task = tx.workflow.task(token.state)
    policy = tx.workflow.retry_for(task, compensation)
    verdict = decide_retry(
        policy,
        token.attempts_used,
        event.error,
        spread_for(tx.run.id, token.seq, token.attempt),
        event.retry_after,
        event.non_retryable,
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
        tx.note("retry_scheduled", token.state, retried.attempt, delay=0.0)
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
        tx.note("retry_scheduled", token.state, waiting.attempt, delay=verdict.delay, at=wake_at)
        tx.schedule(waiting, "retry", wake_at)
    return None


def _timer_fired(tx: Transition, event: TimerFired) -> Rejection | None:
    if event.purpose == "deadline":
        if tx.run.deadline is None or tx.sla_met is not None:
            return Rejection("no deadline is pending")
        tx.deadline_passed()
        return None
    token = tx.tokens.get(event.seq) if event.seq is not None else None
    expected = {
        "retry": Phase.RETRY_WAIT,
        "wait": Phase.WAITING,
        "approval": Phase.AWAITING_SIGNAL,
    }.get(event.purpose)
    if token is None or expected is None or token.phase is not expected:
        return Rejection(f"stale timer {event.key}")
    if event.purpose == "retry":
        if token.attempt != event.attempt:
            return Rejection(f"stale timer {event.key}: attempt {event.attempt} is not pending")
        running = tx.put(replace(token, phase=Phase.RUNNING, since=tx.now, wake_at=None))
        tx.note("retry_started", token.state, running.attempt, seq=token.seq)
        tx.dispatch(running)
    elif event.purpose == "wait":
        tx.note("wait_elapsed", token.state, until=token.wake_at)
        tx.advance(replace(token, phase=Phase.RUNNING, wake_at=None), None)
    else:
        state = tx.workflow.state(token.state)
        assert isinstance(state, Approval)
        tx.note("approval_timed_out", token.state, signal=state.signal)
        # The timer is the one firing: drop the token without cancelling it.
        quiet = replace(token, phase=Phase.RUNNING, wake_at=None)
        tx.put(quiet)
        if state.on_timeout is not None:
            tx.drop(quiet)
            tx.enter(state.on_timeout, token.parent, token.branch)
        else:
            # Not a step, so nothing to resume: the run fails outright.
            tx.drop(quiet)
            tx.fail_run(
                ErrorInfo.of("ApprovalTimeout", f"no {state.signal!r} signal within {state.timeout}s")
            )
    return None


def _signal(tx: Transition, event: SignalReceived) -> Rejection | None:
    waiting = [
        t for t in tx.tokens.values() if t.phase is Phase.AWAITING_SIGNAL and _signal_of(tx, t) == event.name
    ]
    if not waiting:
        expected = sorted({s for t in tx.tokens.values() if (s := _signal_of(tx, t))})
        hint = f"it waits for {', '.join(map(repr, expected))}" if expected else "it waits for no signal now"
        return Rejection(f"run {tx.run.id} is not waiting for signal {event.name!r}; {hint}")
    tx.note(
        "signal_received",
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


def _signal_of(tx: Transition, token: Token) -> str | None:
    if token.phase is not Phase.AWAITING_SIGNAL:
        return None
    state = tx.workflow.state(token.state)
    return state.signal if isinstance(state, Approval) else None


def _stuck(tx: Transition, state: str | None, verb: str) -> list[Token] | Rejection:
    """The tokens an operator retry or skip acts on: suspended, or the failed one."""
    status = tx.run.status
    if status not in (RunStatus.SUSPENDED, RunStatus.FAILED):
        return Rejection(
            f"run {tx.run.id} is {status.value}; only a suspended or failed run can be given {verb}"
        )
    stuck = [t for t in tx.tokens.values() if t.phase in (Phase.SUSPENDED, Phase.FAILED)]
    if state is not None:
        stuck = [t for t in stuck if t.state == state]
        if not stuck:
            return Rejection(f"run {tx.run.id} has no suspended or failed step at state {state!r}")
    if not stuck:
        return Rejection(
            f"run {tx.run.id} failed outside any step ({tx.run.error.type if tx.run.error else 'unknown'}); it cannot be resumed"
        )
    return stuck


def _resume(tx: Transition, actor: str) -> None:
    """Bring a failed run back to life: re-arm every token it stopped with."""
    tx.status = RunStatus.RUNNING
    tx.finished_at = None
    tx.error = None
    for token in list(tx.tokens.values()):
        match token.phase:
            case Phase.RUNNING:
                # Its attempt was abandoned when the run stopped; run it again.
                tx.dispatch(tx.put(replace(token, attempt=token.attempt + 1, since=tx.now)))
            case Phase.RETRY_WAIT:
                tx.dispatch(tx.put(replace(token, phase=Phase.RUNNING, since=tx.now, wake_at=None)))
            case Phase.WAITING | Phase.AWAITING_SIGNAL if token.wake_at is not None:
                purpose = "wait" if token.phase is Phase.WAITING else "approval"
                tx.schedule(token, purpose, max(token.wake_at, tx.now))
            case _:
                pass
    deadline = tx.run.deadline
    if deadline is not None:
        if deadline > tx.now:
            tx.sla_met = None
            tx.commands.append(ScheduleTimer("deadline", deadline, "deadline"))
        else:
            tx.sla_met = False
    tx.note("run_resumed", actor=actor)


def _retry(tx: Transition, event: RetryRequested) -> Rejection | None:
    stuck = _stuck(tx, event.state, "a retry")
    if isinstance(stuck, Rejection):
        return stuck
    if tx.run.status is RunStatus.FAILED:
        _resume(tx, event.actor)
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
            "operator_retry",
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
        _resume(tx, event.actor)
    token = stuck[0]
    tx.note(
        "operator_skip",
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
    tx.note("operator_cancel", actor=event.actor, compensate=event.compensate, reason=event.reason)
    tx.cancel_requested = True
    if tx.compensating:
        if event.compensate:
            return Rejection(
                f"run {tx.run.id} is already compensating; retry or skip its failed compensation, "
                "or cancel with --no-compensate to abandon the compensations left"
            )
        for token in list(tx.tokens.values()):
            tx.drop(token)
        tx.finish(RunStatus.CANCELLED)
        return None
    tx.error = ErrorInfo.of("Cancelled", event.reason or f"cancelled by {event.actor}")
    if event.compensate and tx.workflow.has_compensations:
        tx.unwind()
    else:
        for token in list(tx.tokens.values()):
            tx.drop(token)
        tx.finish(RunStatus.CANCELLED)
    return None
