"""The transition function for completion tokens and pause/resume. Pure, no I/O."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from legato import Branch, Parallel, RetryPolicy, RunStatus, Succeed, Task, Workflow
from legato.machine.commands import (
    AwaitCompletion,
    CancelTimer,
    Decision,
    DispatchStep,
    Rejection,
    SettleCompletion,
)
from legato.machine.events import (
    CancelRequested,
    CompletionReceived,
    PauseRequested,
    ResumeRequested,
    StepDeferred,
    StepHeldBack,
    StepSucceeded,
    TimerFired,
)
from legato.machine.run import Phase, Run
from legato.machine.vocabulary import CompletionOutcome, HistoryKind, TimerPurpose
from tests.unit.sim import Sim, boom

DIGEST = "d" * 64


def h(ctx: Any) -> None:
    return None


def flow(attempts: int = 2, compensate: bool = False) -> Workflow:
    return Workflow(
        "outside",
        start="ask",
        states={
            "ask": Task(
                h,
                next="after",
                retry=RetryPolicy(max_attempts=attempts, initial_delay=0.0, jitter=0.0),
                compensate=h if compensate else None,
            ),
            "after": Task(h, next="done"),
            "done": Succeed(),
        },
    )


def deferred(sim: Sim, timeout: float | None = 60.0) -> Decision:
    command = sim.pending.pop(0)
    outcome = sim.feed(StepDeferred(command.seq, command.attempt, DIGEST, timeout, command.kind))
    assert isinstance(outcome, Decision)
    return outcome


def token_of(run: Run | None, state: str = "ask") -> Any:
    assert run is not None
    return next(t for t in run.tokens if t.state == state)


def test_a_deferred_step_waits_records_its_token_and_arms_its_timer() -> None:
    sim = Sim(flow()).start()
    decision = deferred(sim, timeout=60.0)
    token = token_of(sim.run)
    assert token.phase is Phase.AWAITING_COMPLETION
    assert AwaitCompletion(1, "ask", 1, DIGEST, sim.now + 60.0) in decision.commands
    assert sim.timers["completion:1"].purpose is TimerPurpose.COMPLETION
    assert sim.status() is RunStatus.RUNNING
    # A redelivered task message of the attempt is stale now: its handler does not run again.
    assert sim.run is not None
    assert not sim.run.expects(1, 1, token.kind)


def test_completing_the_token_succeeds_the_step_with_its_output_once() -> None:
    sim = Sim(flow()).start()
    deferred(sim)
    done = sim.feed(CompletionReceived(1, 1, "cli:ops", {"answer": 42}))
    assert isinstance(done, Decision)
    assert SettleCompletion(1, 1, CompletionOutcome.COMPLETED, "cli:ops") in done.commands
    assert CancelTimer("completion:1") in done.commands
    assert sim.run is not None
    assert sim.run.data["answer"] == 42
    assert sim.run.current_states == ("after",)
    again = sim.feed(CompletionReceived(1, 1, "cli:ops", {"answer": 43}))
    assert isinstance(again, Rejection)
    assert "no longer waits" in again.reason
    sim.drive()
    assert sim.status() is RunStatus.SUCCEEDED


def test_failing_the_token_follows_the_retry_policy() -> None:
    sim = Sim(flow(attempts=2)).start()
    deferred(sim)
    failed = sim.feed(CompletionReceived(1, 1, "http", error=boom("Declined", "no")))
    assert isinstance(failed, Decision)
    assert SettleCompletion(1, 1, CompletionOutcome.FAILED, "http") in failed.commands
    # Retried: the handler runs again (and would hand out a new token).
    assert [(c.state, c.attempt) for c in sim.pending] == [("ask", 2)]
    deferred(sim)
    sim.feed(CompletionReceived(1, 2, "http", error=boom("Declined", "no")))
    assert sim.status() is RunStatus.FAILED
    assert HistoryKind.DEAD_LETTERED in sim.kinds()


def test_a_non_retryable_failure_skips_the_retries_left() -> None:
    sim = Sim(flow(attempts=5)).start()
    deferred(sim)
    sim.feed(CompletionReceived(1, 1, "http", error=boom(), non_retryable=True))
    assert sim.status() is RunStatus.FAILED


def test_the_timeout_fails_the_attempt_and_a_late_completion_is_refused() -> None:
    sim = Sim(flow(attempts=2)).start()
    deferred(sim, timeout=30.0)
    sim.fire_timers()
    assert HistoryKind.COMPLETION_TIMED_OUT in sim.kinds()
    last = sim.decisions[-1]
    assert SettleCompletion(1, 1, CompletionOutcome.TIMED_OUT) in last.commands
    failed = [r for r in last.history if r.kind == HistoryKind.STEP_FAILED]
    assert failed[0].detail["error"]["type"] == "CompletionTimeout"
    assert [(c.state, c.attempt) for c in sim.pending] == [("ask", 2)]
    late = sim.feed(CompletionReceived(1, 1, "cli", {}))
    assert isinstance(late, Rejection)


def test_a_completion_and_the_timeout_racing_on_one_version_exactly_one_wins() -> None:
    sim = Sim(flow()).start()
    deferred(sim, timeout=30.0)
    waiting = sim.run
    assert waiting is not None
    from legato.machine.decide import decide

    timer = TimerFired("completion:1", TimerPurpose.COMPLETION, 1, 1)
    completion = CompletionReceived(1, 1, "cli", {"x": 1})
    for first, second in ((timer, completion), (completion, timer)):
        one = decide(sim.workflow, waiting, first, sim.now + 30)
        assert isinstance(one, Decision)
        # The store applies one of them; the other is decided again on the new run.
        assert isinstance(decide(sim.workflow, one.run, second, sim.now + 30), Rejection)


def test_a_timer_of_no_waiting_token_is_stale() -> None:
    sim = Sim(flow()).start()
    stale = sim.feed(TimerFired("completion:1", TimerPurpose.COMPLETION, 1, 1))
    assert isinstance(stale, Rejection)


def test_cancelling_a_run_that_waits_for_its_token_stops_waiting() -> None:
    sim = Sim(flow(compensate=True)).start()
    deferred(sim)
    cancelled = sim.feed(CancelRequested("ops"))
    assert isinstance(cancelled, Decision)
    assert CancelTimer("completion:1") in cancelled.commands
    assert sim.status() is RunStatus.CANCELLED
    assert isinstance(sim.feed(CompletionReceived(1, 1, "cli", {})), Rejection)


# -- pause and resume ------------------------------------------------------------


def fan_out() -> Workflow:
    return Workflow(
        "fan",
        start="split",
        states={
            "split": Parallel(
                branches=(
                    Branch("a", {"a": Task(h, next="a2"), "a2": Task(h, next="a_end"), "a_end": Succeed()}),
                    Branch("b", {"b": Task(h, next="b_end"), "b_end": Succeed()}),
                ),
                next="done",
            ),
            "done": Succeed(),
        },
    )


def test_pause_lets_running_steps_finish_and_holds_the_next_until_resume() -> None:
    sim = Sim(flow()).start()
    paused = sim.feed(PauseRequested("cli:ops", "investigating"))
    assert isinstance(paused, Decision)
    assert sim.status() is RunStatus.PAUSED
    assert paused.history[0].kind == HistoryKind.OPERATOR_PAUSE
    assert paused.history[0].actor == "cli:ops"
    # The running step reports back: recorded, but the next one is held, not dispatched.
    finished = sim.step()
    assert isinstance(finished, Decision)
    assert not [c for c in finished.commands if isinstance(c, DispatchStep)]
    assert token_of(sim.run, "after").phase is Phase.HELD
    assert HistoryKind.STEP_HELD in sim.kinds()
    assert sim.status() is RunStatus.PAUSED
    assert isinstance(sim.feed(PauseRequested("cli:ops")), Rejection)
    resumed = sim.feed(ResumeRequested("cli:other"))
    assert isinstance(resumed, Decision)
    assert [(c.state, c.attempt) for c in resumed.commands if isinstance(c, DispatchStep)] == [("after", 1)]
    assert resumed.history[0].actor == "cli:other"
    assert resumed.history[0].detail["released"] == ["after"]
    assert isinstance(sim.feed(ResumeRequested("cli:other")), Rejection)
    sim.drive()
    assert sim.status() is RunStatus.SUCCEEDED


def test_a_task_a_worker_got_for_a_paused_run_is_held_before_it_starts() -> None:
    sim = Sim(flow()).start()
    sim.feed(PauseRequested("ops"))
    queued = sim.pending.pop(0)
    held = sim.feed(StepHeldBack(queued.seq, queued.attempt, queued.kind))
    assert isinstance(held, Decision)
    assert token_of(sim.run).phase is Phase.HELD
    sim.feed(ResumeRequested("ops"))
    assert [(c.state, c.attempt) for c in sim.pending] == [("ask", 1)]
    # A worker that holds a step of a run that is not paused (any more) is told to run it.
    assert isinstance(sim.feed(StepHeldBack(queued.seq, queued.attempt, queued.kind)), Rejection)


def test_cancelling_a_paused_run_ends_the_pause_and_compensates() -> None:
    sim = Sim(flow(compensate=True)).start()
    sim.step()  # ask done: its compensation would run
    sim.feed(PauseRequested("ops"))
    sim.feed(CancelRequested("ops"))
    assert sim.run is not None
    assert sim.run.paused is None
    sim.step()  # "after" was running: it drains, then the compensations start, not held
    assert [(c.state, c.kind.value) for c in sim.pending] == [("ask", "compensation")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["step", "pause", "resume", "fire"]), max_size=30))
def test_a_run_paused_and_resumed_any_way_runs_every_step_once(ops: list[str]) -> None:
    sim = Sim(fan_out()).start()
    for op in ops:
        paused = sim.run is not None and sim.run.paused is not None
        if op == "step" and sim.pending:
            sim.step()
        elif op == "pause":
            sim.feed(PauseRequested("ops"))
        elif op == "resume":
            sim.feed(ResumeRequested("ops"))
        if sim.run is not None and sim.run.paused is not None:
            assert sim.status() is RunStatus.PAUSED or sim.run.finished
        if paused and op == "step":
            # Nothing a paused run did dispatched a step.
            assert not [c for c in sim.decisions[-1].commands if isinstance(c, DispatchStep)]
    if sim.run is not None and sim.run.paused is not None:
        sim.feed(ResumeRequested("ops"))
    run = sim.drive()
    assert run.status is RunStatus.SUCCEEDED
    succeeded = [r.state for d in sim.decisions for r in d.history if r.kind == HistoryKind.STEP_SUCCEEDED]
    assert sorted(str(s) for s in succeeded) == ["a", "a2", "b"]


def test_step_results_of_a_paused_run_are_taken() -> None:
    sim = Sim(flow()).start()
    sim.feed(PauseRequested("ops"))
    command = sim.pending.pop(0)
    assert isinstance(sim.feed(StepSucceeded(command.seq, command.attempt, {"k": 1})), Decision)
    assert sim.run is not None
    assert sim.run.data["k"] == 1


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.sampled_from(["complete", "fail", "timeout", "cancel", "pause", "resume", "step", "defer"]),
        max_size=25,
    )
)
def test_every_token_is_settled_at_most_once_whatever_comes(ops: list[str]) -> None:
    sim = Sim(flow(attempts=3, compensate=True)).start()
    # (seq, attempt) of every token handed out, oldest first: a step and, later, its
    # compensation can both wait at attempt 1, so the seq tells their tokens apart.
    tokens: list[tuple[int, int]] = []
    for op in ops:
        run = sim.run
        assert run is not None
        if op == "defer" and sim.pending and sim.pending[0].state == "ask":
            command = sim.pending.pop(0)
            sim.feed(StepDeferred(command.seq, command.attempt, DIGEST, 10.0, command.kind))
            tokens.append((command.seq, command.attempt))
        elif op in ("complete", "fail") and tokens:
            seq, attempt = tokens[-1]
            error = boom() if op == "fail" else None
            sim.feed(CompletionReceived(seq, attempt, "ops", {"ok": True} if error is None else None, error))
        elif op == "timeout" and "completion:1" in sim.timers:
            sim.fire_timers()
        elif op == "cancel":
            sim.feed(CancelRequested("ops"))
        elif op == "pause":
            sim.feed(PauseRequested("ops"))
        elif op == "resume":
            sim.feed(ResumeRequested("ops"))
        elif op == "step" and sim.pending:
            sim.step()
    settled = [c for d in sim.decisions for c in d.commands if isinstance(c, SettleCompletion)]
    # One settlement per token at most, and only of a token that was handed out.
    assert len({(c.seq, c.attempt) for c in settled}) == len(settled)
    assert {(c.seq, c.attempt) for c in settled} <= set(tokens)
    awaited = [c for d in sim.decisions for c in d.commands if isinstance(c, AwaitCompletion)]
    assert len(awaited) == len(tokens)
    # Every run still comes to rest (waits resolved by their timers, held steps by a
    # resume): finished, or suspended when its compensation kept failing.
    if sim.run is not None and sim.run.paused is not None:
        sim.feed(ResumeRequested("ops"))
    run = sim.drive()
    assert run.finished or run.status is RunStatus.SUSPENDED
