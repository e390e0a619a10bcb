"""The working copy of one transition.

``decide`` builds a :class:`Transition` from a run, applies one event to it
through the methods below (enter a state, advance a token, fail, unwind), and
freezes the result into a :class:`Decision`. The run value itself is never
mutated; this class is the only place where the new run is assembled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, assert_never

from legato.machine.child import child_state, dispatch_child, is_waiting_child, let_go, let_go_all
from legato.machine.commands import (
    DEADLINE_TIMER,
    CancelTimer,
    CloseDeadLetters,
    Command,
    DeadLetter,
    Decision,
    DispatchStep,
    HistoryRecord,
    NotifyParent,
    ScheduleTimer,
)
from legato.machine.definition import Priority, Workflow
from legato.machine.errors import ErrorInfo
from legato.machine.map import carry, enter_map, failing, holder_of, item_done
from legato.machine.policies import OnDeadline, OnFailure
from legato.machine.run import (
    CompletedStep,
    ParentLink,
    Phase,
    Run,
    RunStatus,
    StepKind,
    Token,
)
from legato.machine.search import search_values
from legato.machine.signals import BufferedSignal, take_first
from legato.machine.states import (
    Approval,
    Child,
    Choice,
    Fail,
    Map,
    Parallel,
    Succeed,
    Task,
    Wait,
    undoable,
)
from legato.machine.values import JSON, lookup
from legato.machine.vocabulary import DeadLetterStatus, HistoryKind, TimerPurpose

ALL_KINDS = frozenset(StepKind)
STEPS_ONLY = frozenset({StepKind.STEP})

MAX_ENTER_DEPTH = 256
"""States entered within one transition; past it, the definition loops."""


class Transition:
    def __init__(self, workflow: Workflow, run: Run, now: float) -> None:
        self.workflow = workflow
        self.run = run
        self.now = now
        self.status = run.status
        self.tokens: dict[int, Token] = {t.seq: t for t in run.tokens}
        self.data: dict[str, JSON] | None = None  # copied on first write
        self.data_set: set[str] = set()
        """Top-level keys of the data this transition set: what the store writes."""
        self.next_seq = run.next_seq
        self.completed = list(run.completed)
        self.compensating = run.compensating
        self.cancel_requested = run.cancel_requested
        self.compensated = run.compensated
        self.error = run.error
        self.sla_met = run.sla_met
        self.finished_at = run.finished_at
        self.commands: list[Command] = []
        self.history: list[HistoryRecord] = []
        self.signals = list(run.signals)
        self.paused = run.paused
        self.parent = run.parent
        self._asked_to_compensate = False
        self._depth = 0

    @classmethod
    def start(
        cls,
        workflow: Workflow,
        run_id: str,
        input: Mapping[str, JSON],
        now: float,
        priority: Priority,
        idempotency_key: str | None,
        trace_context: Mapping[str, str] | None,
        parent: ParentLink | None = None,
    ) -> Transition:
        """A transition from nothing: a new run, started, before its first state."""
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
            priority=int(priority),
            idempotency_key=idempotency_key,
            trace_context=trace_context,
            deadline=deadline,
            parent=parent,
        )
        tx = cls(workflow, pending, now)
        started: dict[str, Any] = {"parent": parent.run_id} if parent is not None else {}
        tx.note(
            HistoryKind.RUN_STARTED,
            workflow=workflow.name,
            version=workflow.version,
            priority=priority.name.lower(),
            **started,
        )
        if deadline is not None:
            tx.arm_deadline(deadline)
        return tx

    # -- recording ---------------------------------------------------------

    def note(
        self,
        kind: HistoryKind,
        /,
        state: str | None = None,
        attempt: int | None = None,
        actor: str | None = None,
        **detail: Any,
    ) -> None:
        self.history.append(HistoryRecord(kind, self.now, state, attempt, detail, actor))

    def merge(self, values: JSON, key: str | None = None) -> None:
        if values is None and key is None:
            return
        if self.data is None:
            self.data = dict(self.run.data)
        if key is not None:
            self.data[key] = values
            self.data_set.add(key)
        elif isinstance(values, dict):
            self.data.update(values)
            self.data_set.update(values)
        else:
            self.data["result"] = values
            self.data_set.add("result")

    @property
    def current_data(self) -> dict[str, JSON]:
        return self.data if self.data is not None else dict(self.run.data)

    # -- tokens ------------------------------------------------------------

    def new_token(
        self, state: str, phase: Phase, parent: int | None, branch: int | None, **fields: Any
    ) -> Token:
        token = Token(
            seq=self.next_seq,
            state=state,
            phase=phase,
            parent=parent,
            branch=branch,
            since=self.now,
            **fields,
        )
        self.next_seq += 1
        self.tokens[token.seq] = token
        return token

    def put(self, token: Token) -> Token:
        self.tokens[token.seq] = token
        return token

    def drop(self, token: Token) -> None:
        """Remove a token, cancelling the timer it may be waiting on."""
        key = token.timer_key
        if key is not None:
            self.commands.append(CancelTimer(key))
        del self.tokens[token.seq]

    def dispatch(self, token: Token) -> None:
        """Start ``token``'s attempt: a task message, or (a child state) its child run;
        while the run is paused, a held step that its resume dispatches (machine/pause.py)."""
        if self.paused is not None:
            self.put(replace(token, phase=Phase.HELD, since=self.now))
            self.note(HistoryKind.STEP_HELD, token.state, token.attempt, seq=token.seq)
            return
        state = child_state(self, token)
        if state is not None:
            dispatch_child(self, token, state)
            return
        self.commands.append(
            DispatchStep(token.seq, token.state, token.attempt, token.kind, self.run.priority)
        )

    def schedule(self, token: Token, purpose: TimerPurpose, fire_at: float) -> None:
        key = token.timer_key
        assert key is not None, token
        self.commands.append(ScheduleTimer(key, fire_at, purpose, token.seq, token.attempt))

    # -- moving forward ----------------------------------------------------

    def enter(self, name: str, parent: int | None, branch: int | None) -> None:
        self._depth += 1
        if self._depth > MAX_ENTER_DEPTH:
            self.fail_run(
                ErrorInfo.of(
                    "DefinitionLoop",
                    f"more than {MAX_ENTER_DEPTH} states entered in one transition",
                )
            )
            return
        state = self.workflow.state(name)
        match state:
            case Task() | Child():
                self.start_item(name, parent, branch)
            case Choice():
                assert state.default is not None  # validation guarantees it
                target: str = state.default
                matched = "default"
                data = self.current_data
                for rule in state.normalised_rules():
                    if rule.condition.holds(data):
                        target, matched = rule.next, rule.condition.describe()
                        break
                self.note(HistoryKind.CHOICE_MADE, name, next=target, rule=matched)
                self.enter(target, parent, branch)
            case Parallel():
                token = self.new_token(name, Phase.JOINING, parent, branch)
                self.note(HistoryKind.PARALLEL_STARTED, name, seq=token.seq, branches=len(state.branches))
                for number, inner in enumerate(state.branches):
                    self.enter(inner.start, token.seq, number)
            case Map():
                enter_map(self, name, state, parent, branch)
            case Wait():
                self.enter_wait(name, state, parent, branch)
            case Approval():
                self.enter_approval(name, state, parent, branch)
            case Succeed():
                self.note(HistoryKind.STATE_REACHED, name)
                self.scope_done(parent, branch)
            case Fail():
                self.note(HistoryKind.STATE_REACHED, name)
                error = ErrorInfo.of(state.error, state.cause or f"reached fail state {name!r}")
                holder = self.tokens.get(parent) if parent is not None else None
                if holder is not None and holder.map is not None and branch is not None:
                    item_done(self, holder, branch, error)  # an item failed, not the run
                else:
                    self.fail_run(error)

    def start_item(self, name: str, parent: int | None, branch: int | None) -> None:
        """Enter the task ``name``: dispatch its first attempt. (A map starts its items
        here, not through :meth:`enter`, so that they do not count as nested entries.)"""
        token = self.new_token(name, Phase.RUNNING, parent, branch, attempt=1)
        self.note(HistoryKind.STEP_SCHEDULED, name, 1, seq=token.seq)
        self.dispatch(token)

    def enter_approval(self, name: str, state: Approval, parent: int | None, branch: int | None) -> None:
        if self.signals and self.take_kept_signal(name, state, parent, branch):
            return
        wake_at = self.now + state.timeout if state.timeout is not None else None
        token = self.new_token(name, Phase.AWAITING_SIGNAL, parent, branch, wake_at=wake_at)
        self.note(HistoryKind.AWAITING_SIGNAL, name, signal=state.signal, timeout_at=wake_at)
        if wake_at is not None:
            self.schedule(token, TimerPurpose.APPROVAL, wake_at)

    def keep_signal(self, name: str, data: Mapping[str, JSON], actor: str) -> None:
        """A signal came before the run waits for it: keep it (machine/signals.py)."""
        self.signals.append(BufferedSignal(name, dict(data), actor, self.now))
        self.note(
            HistoryKind.SIGNAL_BUFFERED, actor=actor, signal=name, data=dict(data), kept=len(self.signals)
        )

    def take_kept_signal(self, name: str, state: Approval, parent: int | None, branch: int | None) -> bool:
        """Entering an approval: consume the oldest kept signal it waits for, if any."""
        kept = take_first(self.signals, state.signal)
        if kept is None:
            return False
        token = self.new_token(name, Phase.AWAITING_SIGNAL, parent, branch)
        self.note(
            HistoryKind.SIGNAL_RECEIVED,
            name,
            actor=kept.actor,
            signal=kept.name,
            data=dict(kept.data),
            sent_at=kept.at,
        )
        if kept.data:
            self.merge(dict(kept.data))
        self.advance(token, None)
        return True

    def interrupting(self, reason: str, kinds: frozenset[StepKind]) -> None:
        """Record that the handlers of the running attempts are being interrupted
        (the workers learn it from the run's status change: worker/inflight.py)."""
        for token in self.tokens.values():
            if (
                token.phase is Phase.RUNNING
                and token.kind in kinds
                and not token.draining
                and child_state(self, token) is None  # a child is cancelled, not interrupted
            ):
                self.note(
                    HistoryKind.STEP_INTERRUPTED, token.state, token.attempt, seq=token.seq, reason=reason
                )

    def enter_wait(self, name: str, state: Wait, parent: int | None, branch: int | None) -> None:
        if state.seconds is not None:
            wake_at = self.now + state.seconds
        else:
            assert state.until is not None
            wake_at_or_none = _timestamp(lookup(self.current_data, state.until)[1])
            if wake_at_or_none is None:
                self.fail_run(
                    ErrorInfo.of(
                        "InvalidWaitUntil",
                        f"wait {name!r}: data at {state.until!r} is not a timestamp (epoch seconds or ISO 8601)",
                    )
                )
                return
            wake_at = wake_at_or_none
        if wake_at <= self.now:
            self.note(HistoryKind.WAIT_ELAPSED, name, until=wake_at)
            nxt = state.next
            if nxt is not None:
                self.enter(nxt, parent, branch)
            else:
                self.scope_done(parent, branch)
            return
        token = self.new_token(name, Phase.WAITING, parent, branch, wake_at=wake_at)
        self.note(HistoryKind.WAITING, name, until=wake_at)
        self.schedule(token, TimerPurpose.WAIT, wake_at)

    def advance(self, token: Token, output: JSON, skipped: bool = False) -> None:
        """``token`` finished its state successfully: merge, then move on."""
        state = self.workflow.state(token.state)
        holder = holder_of(self, token)
        if isinstance(state, Task | Child):
            if holder is not None:
                carry(self, token, holder, output, state.output_key)
            elif output is not None:
                self.merge(output, state.output_key)
            if undoable(state) and not skipped:
                self.completed.append(self.completed_step(token))
        self.drop(token)
        nxt = getattr(state, "next", None)
        if nxt is None:
            self.scope_done(token.parent, token.branch)
        elif holder is not None and failing(self, token):
            assert token.branch is not None
            item_done(self, holder, token.branch, stopped=True)
        else:
            self.enter(nxt, token.parent, token.branch)

    def completed_step(self, token: Token) -> CompletedStep:
        """What undoes ``token``'s step; a map item's keeps its index, which its compensation sees."""
        item = token.branch if self.workflow.placement(token.state).map is not None else None
        child = token.child if child_state(self, token) is not None else None
        return CompletedStep(token.state, token.seq, item, child)

    def scope_done(self, parent: int | None, branch: int | None) -> None:
        if parent is None:
            self.finish(RunStatus.SUCCEEDED)
            return
        holder = self.tokens[parent]
        assert branch is not None
        if holder.map is not None:
            item_done(self, holder, branch)
            return
        assert branch not in holder.branches_done
        done = (*holder.branches_done, branch)
        holder = self.put(replace(holder, branches_done=done))
        total = len(self.workflow.parallel(holder.state).branches)
        self.note(HistoryKind.BRANCH_COMPLETED, holder.state, branch=branch, done=len(done), of=total)
        if len(done) == total:
            self.note(HistoryKind.JOINED, holder.state, seq=holder.seq)
            self.advance(holder, None)

    # -- failure -----------------------------------------------------------

    def step_failed_for_good(self, token: Token, error: ErrorInfo, reason: str) -> None:
        holder = holder_of(self, token)
        if holder is not None and token.branch is not None:
            # An item failed: no dead letter, no failure path; the map counts it.
            self.drop(token)
            item_done(self, holder, token.branch, error)
            return
        task = self.workflow.step(token.state)
        compensation = token.kind is StepKind.COMPENSATION
        self.commands.append(
            DeadLetter(
                token.seq,
                token.state,
                token.attempt,
                token.kind,
                reason,
                error,
                token.attempts_used,
            )
        )
        self.note(
            HistoryKind.DEAD_LETTERED, token.state, token.attempt, reason=reason, step_kind=token.kind.value
        )
        if compensation or self.workflow.on_failure_for(task) is OnFailure.SUSPEND:
            self.suspend(token, error, reason)
        elif self.workflow.on_failure_for(task) is OnFailure.FAIL:
            self.fail_run(error, token, compensate=False)
        else:
            self.fail_run(error, token)

    def suspend(self, token: Token, error: ErrorInfo, reason: str) -> None:
        self.put(replace(token, phase=Phase.SUSPENDED, error=error, since=self.now))
        self.note(HistoryKind.SUSPENDED, token.state, token.attempt, reason=reason, error=error.to_json())

    def fail_run(self, error: ErrorInfo, failed: Token | None = None, compensate: bool = True) -> None:
        """The run cannot go forward: unwind it (saga) or stop it."""
        self.error = error
        if compensate and not self.compensating and self.anything_to_undo(failed):
            if failed is not None:
                self.drop(failed)
            self.unwind()
            return
        # Stop: keep the tokens as they are so that a replay can resume them,
        # but silence their timers while the run is stopped.
        for other in list(self.tokens.values()):
            if other.timer_key is not None:
                self.commands.append(CancelTimer(other.timer_key))
        if failed is not None:
            self.put(replace(failed, phase=Phase.FAILED, error=error, since=self.now))
        self.finish(RunStatus.FAILED)

    def anything_to_undo(self, failed: Token | None) -> bool:
        """Whether unwinding would run a compensation: a completed step has one, or a
        step still running (other than ``failed``) has one and may yet succeed.

        When not, the run stops as it is, keeping the failed step, so that it can be
        retried or replayed like a run of a workflow without compensations."""
        if self.completed:
            return True
        return any(
            t.phase is Phase.RUNNING
            and t.kind is StepKind.STEP
            and (failed is None or t.seq != failed.seq)
            and undoable(self.workflow.state(t.state))
            for t in self.tokens.values()
        )

    def unwind(self) -> None:
        """Start compensating: let running steps drain, drop everything else."""
        self.compensating = True
        self.note(HistoryKind.COMPENSATION_STARTED, reason=self.error.message if self.error else "cancelled")
        for other in list(self.tokens.values()):
            if is_waiting_child(self, other) and other.phase is Phase.RUNNING:
                # A cancelled child is waited for (it unwinds first); one left running is not.
                if let_go(self, other, "its parent run is unwinding"):
                    self.put(replace(other, draining=True))
                else:
                    self.drop(other)
            elif other.phase is Phase.RUNNING and other.kind is StepKind.STEP:
                self.put(replace(other, draining=True))
            elif other.kind is StepKind.STEP:
                self.drop(other)
        self.continue_unwinding()

    def continue_unwinding(self) -> None:
        if any(t.draining for t in self.tokens.values()):
            return
        if any(t.kind is StepKind.COMPENSATION for t in self.tokens.values()):
            return
        if self.completed:
            done = self.completed.pop()
            token = self.new_token(
                done.state,
                Phase.RUNNING,
                None,
                done.item,
                attempt=1,
                kind=StepKind.COMPENSATION,
                child=done.child,
            )
            self.note(HistoryKind.COMPENSATION_SCHEDULED, done.state, 1, seq=token.seq, step_seq=done.seq)
            self.dispatch(token)
            return
        # Nothing left to undo.
        for other in list(self.tokens.values()):
            self.drop(other)
        if self.cancel_requested:
            self.finish(RunStatus.CANCELLED)
        elif self.compensated or self._asked_to_compensate:
            self.finish(RunStatus.COMPENSATED)
        else:
            self.finish(RunStatus.FAILED)

    def compensation_succeeded(self, token: Token, output: JSON, timing: Mapping[str, Any]) -> None:
        self.note(HistoryKind.COMPENSATION_SUCCEEDED, token.state, token.attempt, seq=token.seq, **timing)
        self.merge(output)
        self.drop(token)
        self.compensated += 1
        self.continue_unwinding()

    def drained(self, token: Token, succeeded: bool) -> None:
        """A step still running when the run began to unwind has reported back."""
        if succeeded and undoable(self.workflow.state(token.state)):
            # Its effect happened, so it is undone too.
            self.completed.append(self.completed_step(token))
        self.drop(token)
        self.continue_unwinding()

    # -- operators ---------------------------------------------------------

    def resume(self, actor: str) -> None:
        """Bring a failed run back to life: re-arm every token it stopped with."""
        self.status = RunStatus.RUNNING
        self.finished_at = None
        self.error = None
        for token in list(self.tokens.values()):
            phase = token.phase
            match phase:
                case Phase.RUNNING | Phase.AWAITING_COMPLETION:
                    # Its attempt was abandoned when the run stopped (its token with
                    # it); run it again.
                    again = replace(token, phase=Phase.RUNNING, attempt=token.attempt + 1, wake_at=None)
                    self.dispatch(self.put(replace(again, since=self.now)))
                case Phase.HELD:
                    self.dispatch(self.put(replace(token, phase=Phase.RUNNING, since=self.now)))
                case Phase.RETRY_WAIT:
                    self.dispatch(self.put(replace(token, phase=Phase.RUNNING, since=self.now, wake_at=None)))
                case Phase.WAITING | Phase.AWAITING_SIGNAL:
                    purpose = token.timer_purpose
                    if purpose is not None and token.wake_at is not None:
                        self.schedule(token, purpose, max(token.wake_at, self.now))
                case Phase.JOINING | Phase.SUSPENDED | Phase.FAILED:
                    pass
                case _:
                    assert_never(phase)
        deadline = self.run.deadline
        if deadline is not None:
            if deadline > self.now:
                self.sla_met = None
                self.arm_deadline(deadline)
            else:
                self.sla_met = False
        self.note(HistoryKind.RUN_RESUMED, actor=actor)

    def compensate_for_parent(self, link: ParentLink) -> None:
        """A succeeded child run's parent unwinds: undo this run's completed steps,
        then report (as ``compensated``) to the parent's compensation ``link``."""
        self.status = RunStatus.RUNNING
        self.finished_at = None
        self.parent = link
        self.error = ErrorInfo.of("ParentUnwinding", f"parent run {link.run_id} is compensating")
        self.note(HistoryKind.COMPENSATION_REQUESTED, parent=link.run_id)
        self._asked_to_compensate = True
        self.unwind()

    def close_dead_letters(self, tokens: list[Token], status: DeadLetterStatus, actor: str) -> None:
        """The steps of ``tokens`` were dealt with by ``actor``: their open dead letters close."""
        if tokens:
            self.commands.append(CloseDeadLetters(tuple(t.seq for t in tokens), status, actor))

    def cancel(self, actor: str, compensate: bool, reason: str) -> None:
        """Stop the run for an operator: unwind it (saga) if asked and it can; a
        run already unwinding abandons the compensations left."""
        paused: dict[str, Any] = {"was_paused": True} if self.paused is not None else {}
        self.note(HistoryKind.OPERATOR_CANCEL, actor=actor, compensate=compensate, reason=reason, **paused)
        # Cancelling ends the pause: the compensations it asks for must run.
        self.paused = None
        self.cancel_requested = True
        self.interrupting("the run was cancelled", ALL_KINDS if self.compensating else STEPS_ONLY)
        if self.compensating:
            self.finish(RunStatus.CANCELLED)
            return
        self.error = ErrorInfo.of("Cancelled", reason or f"cancelled by {actor}")
        if compensate and self.workflow.has_compensations:
            self.unwind()
        else:
            self.finish(RunStatus.CANCELLED)

    # -- the end -----------------------------------------------------------

    def finish(self, status: RunStatus) -> None:
        self.status = status
        self.finished_at = self.now
        self.paused = None  # a replay of a failed run starts it again, unpaused
        let_go_all(self, f"its parent run ended {status.value}")
        if status is not RunStatus.FAILED:
            for other in list(self.tokens.values()):
                self.drop(other)
        if self.run.deadline is not None and self.sla_met is None:
            self.sla_met = self.now <= self.run.deadline
            self.commands.append(CancelTimer(DEADLINE_TIMER))
        self.note(HistoryKind.RUN_FINISHED, status=status.value, sla_met=self.sla_met)
        if self.parent is not None:
            self.commands.append(NotifyParent(self.parent, status))

    def arm_deadline(self, deadline: float) -> None:
        self.commands.append(ScheduleTimer(DEADLINE_TIMER, deadline, TimerPurpose.DEADLINE))

    def deadline_passed(self) -> None:
        self.sla_met = False
        self.note(HistoryKind.SLA_MISSED, deadline=self.run.deadline)
        if self.workflow.on_deadline is OnDeadline.FAIL and not self.compensating:
            self.interrupting("the run missed its deadline", STEPS_ONLY)
            self.fail_run(
                ErrorInfo.of("DeadlineExceeded", f"run missed its deadline of {self.workflow.sla}s")
            )

    # -- result ------------------------------------------------------------

    def settle_status(self) -> RunStatus:
        if self.status in (
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.COMPENSATED,
            RunStatus.CANCELLED,
        ):
            return self.status
        if self.paused is not None:
            return RunStatus.PAUSED
        if any(t.phase is Phase.SUSPENDED for t in self.tokens.values()):
            return RunStatus.SUSPENDED
        if self.compensating:
            return RunStatus.COMPENSATING
        return RunStatus.RUNNING

    def decision(self) -> Decision:
        run = self.run
        data = self.data if self.data is not None else run.data
        new = run.evolve(
            status=self.settle_status(),
            version=run.version + 1,
            data=data,
            # Computed with the transition, so the row written with it is never stale.
            search=search_values(self.workflow.search, data) if self.workflow.search else None,
            updated_at=self.now,
            finished_at=self.finished_at,
            sla_met=self.sla_met,
            error=self.error,
            tokens=tuple(sorted(self.tokens.values(), key=lambda t: t.seq)),
            next_seq=self.next_seq,
            completed=tuple(self.completed),
            compensating=self.compensating,
            cancel_requested=self.cancel_requested,
            compensated=self.compensated,
            signals=tuple(self.signals),
            paused=self.paused,
            parent=self.parent,
        )
        return Decision(
            new, tuple(self.commands), tuple(self.history), run.version, data_set=frozenset(self.data_set)
        )


def _timestamp(value: JSON) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        return parsed.timestamp()
    return None
