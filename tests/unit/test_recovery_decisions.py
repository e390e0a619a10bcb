"""Where a run can be resumed, and why not: the decisions of machine/recovery.py, driven purely."""

from __future__ import annotations

from typing import Any

import pytest

from legato import Branch, OnDeadline, OnFailure, Parallel, RetryPolicy, RunStatus, Task, Workflow
from legato.machine.commands import CloseDeadLetters, Decision, Rejection
from legato.machine.events import CancelRequested, RetryRequested, SkipRequested, StepFailed, StepSucceeded
from legato.machine.recovery import replay_refusal
from legato.machine.run import Phase, StepKind
from legato.machine.vocabulary import DeadLetterStatus, HistoryKind
from tests.unit.sim import Sim, boom, ok


def h(ctx: Any) -> None:
    return None


NONE = RetryPolicy.none()


def pair(*, compensate: bool, on_failure: OnFailure = OnFailure.COMPENSATE) -> Workflow:
    """``a`` then ``b``; ``b`` has a compensation only when asked (``a`` never)."""
    return Workflow(
        "pair",
        start="a",
        states={
            "a": Task(h, next="b", retry=NONE),
            "b": Task(h, compensate=h if compensate else None, retry=NONE, on_failure=on_failure),
        },
    )


def failing_at_b(sim: Sim) -> None:
    sim.drive(lambda s, a, k: boom("ConnectionError", "down") if s == "b" and a == 1 else ok(s, a, k))


def closes(outcome: Decision | Rejection) -> list[CloseDeadLetters]:
    assert isinstance(outcome, Decision), outcome
    return [c for c in outcome.commands if isinstance(c, CloseDeadLetters)]


@pytest.mark.parametrize("compensate", [False, True])
def test_a_run_that_failed_in_a_step_keeps_that_step_whatever_its_compensations(compensate: bool) -> None:
    # Nothing was undone (the step with a compensation is the one that failed):
    # the run stops where it failed, and a retry resumes it there.
    sim = Sim(pair(compensate=compensate)).start()
    failing_at_b(sim)
    assert sim.run is not None
    assert sim.status() is RunStatus.FAILED
    assert [(t.state, t.phase) for t in sim.run.tokens] == [("b", Phase.FAILED)]
    assert HistoryKind.COMPENSATION_STARTED not in sim.kinds()
    assert replay_refusal(sim.run, "b") is None
    outcome = sim.feed(RetryRequested("ops", state="b", dead_letter=4))
    assert closes(outcome) == [CloseDeadLetters((sim.run.tokens[0].seq,), DeadLetterStatus.REPLAYED, "ops")]
    assert sim.drive().status is RunStatus.SUCCEEDED


def test_a_step_with_a_compensation_still_running_elsewhere_makes_the_failure_unwind() -> None:
    wf = Workflow(
        "par",
        start="p",
        states={
            "p": Parallel(
                [Branch("x", {"x": Task(h, retry=NONE)}), Branch("y", {"y": Task(h, compensate=h)})]
            ),
        },
    )
    sim = Sim(wf).start()
    x = next(d for d in sim.pending if d.state == "x")
    y = next(d for d in sim.pending if d.state == "y")
    sim.pending.clear()
    sim.feed(StepFailed(x.seq, 1, boom(), non_retryable=True))
    assert sim.status() is RunStatus.COMPENSATING  # y may yet succeed, and then be undone
    sim.feed(StepSucceeded(y.seq, 1, None))
    assert sim.drive().status is RunStatus.COMPENSATED


def test_a_compensated_run_is_refused_with_why_and_what_to_do() -> None:
    wf = Workflow(
        "saga",
        start="a",
        states={"a": Task(h, next="b", compensate=h, retry=NONE), "b": Task(h, retry=NONE)},
    )
    sim = Sim(wf).start()
    sim.drive(lambda s, a, k: boom("ValueError", "bug") if (s, k) == ("b", StepKind.STEP) else ok(s, a, k))
    assert sim.run is not None
    assert sim.status() is RunStatus.COMPENSATED
    refused = sim.feed(RetryRequested("ops", state="b", dead_letter=9))
    assert isinstance(refused, Rejection)
    assert refused.reason == (
        f"run {sim.run.id} is compensated: it failed (ValueError: bug) and what it had done was undone, "
        "so it cannot be resumed; start a new run instead; resolve dead letter 9 to close it without a replay"
    )
    assert replay_refusal(sim.run, "b") == refused.reason.split("; resolve dead letter")[0]
    skipped = sim.feed(SkipRequested("ops"))
    assert isinstance(skipped, Rejection)
    assert "is compensated" in skipped.reason


def test_a_run_that_missed_its_deadline_failed_outside_any_step() -> None:
    wf = Workflow(
        "sla",
        start="a",
        states={"a": Task(h, next="b"), "b": Task(h, compensate=h)},
        sla=10,
        on_deadline=OnDeadline.FAIL,
    )
    sim = Sim(wf).start()
    sim.fire_timers()
    assert sim.run is not None
    assert sim.status() is RunStatus.FAILED
    refused = sim.feed(RetryRequested("ops"))
    assert isinstance(refused, Rejection)
    assert refused.reason == (
        f"run {sim.run.id} failed outside any step (DeadlineExceeded: run missed its deadline of 10s); "
        "it has no step to resume; start a new run instead"
    )


def test_skip_and_cancel_close_the_dead_letters_of_the_steps_they_deal_with() -> None:
    sim = Sim(pair(compensate=False, on_failure=OnFailure.SUSPEND)).start()
    failing_at_b(sim)
    assert sim.run is not None
    assert sim.status() is RunStatus.SUSPENDED
    seq = sim.run.tokens[0].seq
    skipped = Sim(pair(compensate=False, on_failure=OnFailure.SUSPEND)).start()
    failing_at_b(skipped)
    assert closes(skipped.feed(SkipRequested("ops:a"))) == [
        CloseDeadLetters((seq,), DeadLetterStatus.RESOLVED, "ops:a")
    ]
    assert closes(sim.feed(CancelRequested("ops:b", compensate=False))) == [
        CloseDeadLetters((seq,), DeadLetterStatus.RESOLVED, "ops:b")
    ]
    assert sim.status() is RunStatus.CANCELLED
    refused = sim.feed(RetryRequested("ops"))
    assert isinstance(refused, Rejection)
    assert (
        refused.reason == f"run {sim.run.id} is cancelled, so it cannot be resumed; start a new run instead"
    )


def test_a_failed_run_cannot_be_cancelled_and_is_told_what_to_do_instead() -> None:
    sim = Sim(pair(compensate=True)).start()
    failing_at_b(sim)
    assert sim.run is not None
    refused = sim.feed(CancelRequested("ops"))
    assert isinstance(refused, Rejection)
    assert refused.reason == (
        f"run {sim.run.id} is failed; a finished run takes no cancel: retry or skip its failed step (b), "
        "or resolve its dead letter to leave it failed"
    )


def test_a_retry_names_where_the_run_is_stuck_when_the_state_is_wrong() -> None:
    sim = Sim(pair(compensate=False)).start()
    failing_at_b(sim)
    assert sim.run is not None
    refused = sim.feed(RetryRequested("ops", state="a"))
    assert isinstance(refused, Rejection)
    assert (
        refused.reason == f"run {sim.run.id} has no suspended or failed step at state 'a'; it is stuck at b"
    )
