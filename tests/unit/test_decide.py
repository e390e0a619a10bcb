"""Scenarios of the transition function, driven purely (no I/O, no clock)."""

from __future__ import annotations

from typing import Any

import pytest

from legato import (
    Approval,
    Branch,
    Choice,
    Fail,
    Field,
    OnDeadline,
    OnFailure,
    Parallel,
    RetryPolicy,
    RunStatus,
    Succeed,
    Task,
    Wait,
    Workflow,
)
from legato.machine.commands import DeadLetter, Decision, Rejection
from legato.machine.errors import ErrorInfo
from legato.machine.events import (
    CancelRequested,
    RetryRequested,
    SignalReceived,
    SkipRequested,
    StepFailed,
    StepSucceeded,
)
from legato.machine.run import Phase, StepKind
from tests.unit.sim import Outcome, Sim, boom, ok


def h(ctx: Any) -> None:
    return None


FAST = RetryPolicy(max_attempts=3, initial_delay=1.0, factor=2.0, jitter=0.0)


def chain(n: int = 3, **task: Any) -> Workflow:
    states: dict[str, Any] = {
        f"s{i}": Task(h, next=f"s{i + 1}" if i < n else None, **task) for i in range(1, n + 1)
    }
    return Workflow("chain", start="s1", states=states, retry=FAST)


def test_a_chain_runs_its_steps_in_order_and_succeeds() -> None:
    sim = Sim(chain(3)).start({"x": 1})
    run = sim.drive()
    assert run.status is RunStatus.SUCCEEDED
    assert [d.state for d in sim.dispatched] == ["s1", "s2", "s3"]
    assert run.data == {"x": 1, "s1_step": 1, "s2_step": 1, "s3_step": 1}
    assert run.version == 4  # start + one transition per step
    assert (
        sim.decisions[-1].history[-1].kind == "run_finished"
    )  # the end is recorded with the last transition


def test_choice_follows_the_first_rule_that_holds_else_the_default() -> None:
    wf = Workflow(
        "route",
        start="c",
        states={
            "c": Choice([(Field("total") > 100, "big"), (Field("vip") == True, "vip")], default="small"),  # noqa: E712
            "big": Succeed(),
            "vip": Succeed(),
            "small": Succeed(),
        },
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"total": 500}, "big"),
        ({"total": 5, "vip": True}, "vip"),
        ({"total": "x"}, "small"),
    ]
    for data, expected in cases:
        sim = Sim(wf).start(data)
        chosen = [h.detail["next"] for h in sim.decisions[0].history if h.kind == "choice_made"]
        assert chosen == [expected]
        assert sim.run is not None
        assert sim.status() is RunStatus.SUCCEEDED


def parallel_wf(**kwargs: Any) -> Workflow:
    return Workflow(
        "fan",
        start="p",
        retry=FAST,
        states={
            "p": Parallel(
                [
                    Branch("a1", {"a1": Task(h, next="a2"), "a2": Task(h)}),
                    Branch("b1", {"b1": Task(h, compensate=h)}),
                    Branch("c1", {"c1": Task(h, compensate=h)}),
                ],
                next="after",
            ),
            "after": Task(h, **kwargs),
        },
    )


def test_parallel_fans_out_and_joins_once_when_every_branch_is_done() -> None:
    sim = Sim(parallel_wf()).start()
    assert sorted(d.state for d in sim.pending) == ["a1", "b1", "c1"]
    sim.step(index=0)  # a1 -> a2
    assert "after" not in [d.state for d in sim.dispatched]
    run = sim.drive()
    assert run.status is RunStatus.SUCCEEDED
    assert sim.kinds().count("joined") == 1
    assert [d.state for d in sim.dispatched].count("after") == 1


def test_a_failed_step_is_retried_by_its_policy_with_durable_timers() -> None:
    failures = {"s2": 2}

    def flaky(state: str, attempt: int, kind: StepKind) -> Outcome:
        if failures.get(state, 0) >= attempt:
            return boom()
        return ok(state, attempt, kind)

    sim = Sim(chain(3)).start()
    sim.step(flaky)
    sim.step(flaky)  # s2 attempt 1 fails
    assert sim.run is not None
    token = sim.run.tokens[0]
    assert token.phase is Phase.RETRY_WAIT
    assert token.attempt == 2
    assert sim.timers["retry:2"].fire_at == pytest.approx(sim.now + 1.0)
    run = sim.drive(flaky)
    assert run.status is RunStatus.SUCCEEDED
    delays = [h.detail["delay"] for d in sim.decisions for h in d.history if h.kind == "retry_scheduled"]
    assert delays == [1.0, 2.0]
    assert [d.attempt for d in sim.dispatched if d.state == "s2"] == [1, 2, 3]


def test_exhausted_retries_dead_letter_the_step_and_fail_the_run() -> None:
    sim = Sim(chain(2)).start()
    run = sim.drive(lambda s, a, k: boom() if s == "s2" else ok(s, a, k))
    assert run.status is RunStatus.FAILED
    letters = [c for d in sim.decisions for c in d.commands if isinstance(c, DeadLetter)]
    assert len(letters) == 1
    assert letters[0].state == "s2"
    assert letters[0].attempts == 3
    assert letters[0].reason == "retries exhausted"
    assert run.error is not None
    assert run.error.message == "boom"


def test_a_non_retryable_error_skips_the_remaining_attempts() -> None:
    sim = Sim(chain(1)).start()
    command = sim.pending.pop()
    sim.feed(StepFailed(command.seq, 1, boom(), non_retryable=True))
    assert sim.run is not None
    assert sim.status() is RunStatus.FAILED
    assert [d.attempt for d in sim.dispatched] == [1]


def test_retry_after_uses_the_handlers_delay() -> None:
    sim = Sim(chain(1)).start()
    command = sim.pending.pop()
    sim.feed(StepFailed(command.seq, 1, boom(), retry_after=42.0))
    assert sim.timers["retry:1"].fire_at == pytest.approx(sim.now + 42.0)


def saga(n: int = 4, fail_at: int = 3) -> Workflow:
    states = {
        f"s{i}": Task(h, next=f"s{i + 1}" if i < n else None, compensate=h, retry=RetryPolicy.none())
        for i in range(1, n + 1)
    }
    return Workflow("saga", start="s1", states=states)


def test_a_saga_compensates_completed_steps_in_reverse_then_ends_compensated() -> None:
    sim = Sim(saga()).start()
    run = sim.drive(lambda s, a, k: boom() if (s, k) == ("s3", StepKind.STEP) else ok(s, a, k))
    assert run.status is RunStatus.COMPENSATED
    compensations = [d.state for d in sim.dispatched if d.kind is StepKind.COMPENSATION]
    assert compensations == ["s2", "s1"]
    assert run.data["s2_compensation"] == 1
    assert run.data["s1_compensation"] == 1


def test_a_compensation_that_exhausts_its_retries_suspends_the_run() -> None:
    sim = Sim(saga()).start()
    run = sim.drive(
        lambda s, a, k: boom() if s == "s3" or (s, k) == ("s2", StepKind.COMPENSATION) else ok(s, a, k)
    )
    assert run.status is RunStatus.SUSPENDED
    stuck = [t for t in run.tokens if t.phase is Phase.SUSPENDED]
    assert [(t.state, t.kind) for t in stuck] == [("s2", StepKind.COMPENSATION)]
    # A person skips the failed compensation; the rest of the saga continues.
    outcome = sim.feed(SkipRequested("ops:alice"))
    assert isinstance(outcome, Decision)
    run = sim.drive()
    assert run.status is RunStatus.COMPENSATED
    assert [d.state for d in sim.dispatched if d.kind is StepKind.COMPENSATION][-1] == "s1"


def test_completed_parallel_branches_are_compensated_and_running_ones_drain_first() -> None:
    sim = Sim(parallel_wf(retry=RetryPolicy.none())).start()
    b1 = next(d for d in sim.pending if d.state == "b1")
    c1 = next(d for d in sim.pending if d.state == "c1")
    a1 = next(d for d in sim.pending if d.state == "a1")
    sim.pending.clear()
    sim.feed(StepSucceeded(b1.seq, 1, None))
    sim.feed(StepFailed(a1.seq, 1, boom(), non_retryable=True))
    assert sim.run is not None
    assert sim.status() is RunStatus.COMPENSATING
    assert not sim.pending  # c1 is still running: compensation waits for it
    sim.feed(StepSucceeded(c1.seq, 1, None))
    run = sim.drive()
    assert run.status is RunStatus.COMPENSATED
    assert [d.state for d in sim.dispatched if d.kind is StepKind.COMPENSATION] == ["c1", "b1"]


def test_suspend_on_failure_waits_for_a_person_then_retry_resumes() -> None:
    wf = Workflow(
        "s",
        start="a",
        states={"a": Task(h, next="b", on_failure=OnFailure.SUSPEND, retry=RetryPolicy.none()), "b": Task(h)},
    )
    sim = Sim(wf).start()
    sim.step(lambda s, a, k: boom())
    assert sim.run is not None
    assert sim.status() is RunStatus.SUSPENDED
    refused = sim.feed(SignalReceived("go"))
    assert isinstance(refused, Rejection)
    sim.feed(RetryRequested("ops:bob", data={"fixed": True}))
    assert sim.status() is RunStatus.RUNNING
    assert sim.run.data["fixed"] is True
    assert sim.pending[-1].attempt == 2
    run = sim.drive()
    assert run.status is RunStatus.SUCCEEDED
    actors = [h.actor for d in sim.decisions for h in d.history if h.kind == "operator_retry"]
    assert actors == ["ops:bob"]


def test_replay_of_a_failed_run_resumes_it_with_a_fresh_budget() -> None:
    sim = Sim(chain(2)).start()
    sim.drive(lambda s, a, k: boom() if s == "s2" else ok(s, a, k))
    assert sim.run is not None
    assert sim.status() is RunStatus.FAILED
    sim.feed(RetryRequested("ops", state="s2", dead_letter=7))
    assert sim.status() is RunStatus.RUNNING
    attempts = [d.attempt for d in sim.dispatched if d.state == "s2"]
    assert attempts == [1, 2, 3, 4]
    # A fresh budget: three more attempts before giving up again.
    run = sim.drive(lambda s, a, k: boom() if (s, a) in (("s2", 4), ("s2", 5)) else ok(s, a, k))
    assert run.status is RunStatus.SUCCEEDED


def test_approval_resumes_on_its_signal_and_merges_the_data() -> None:
    wf = Workflow(
        "ap",
        start="a",
        states={
            "a": Approval("approve", next="b", timeout=60, on_timeout="late"),
            "b": Succeed(),
            "late": Fail("Late"),
        },
    )
    sim = Sim(wf).start()
    assert "approval:1" in sim.timers
    assert isinstance(sim.feed(SignalReceived("reject")), Rejection)
    sim.feed(SignalReceived("approve", {"by": "carol"}, "ops:carol"))
    assert sim.run is not None
    assert sim.status() is RunStatus.SUCCEEDED
    assert sim.run.data["by"] == "carol"
    assert "approval:1" not in sim.timers


def test_approval_takes_its_timeout_path_when_no_signal_comes() -> None:
    wf = Workflow(
        "ap",
        start="a",
        states={
            "a": Approval("approve", next="b", timeout=60, on_timeout="late"),
            "b": Succeed(),
            "late": Fail("Late"),
        },
    )
    sim = Sim(wf).start()
    sim.fire_timers()
    assert sim.run is not None
    assert sim.status() is RunStatus.FAILED
    assert sim.run.error is not None
    assert sim.run.error.type == "Late"
    assert isinstance(sim.feed(SignalReceived("approve")), Rejection)


def test_wait_until_a_timestamp_in_the_data() -> None:
    wf = Workflow("w", start="w", states={"w": Wait(until="ship_at", next="done"), "done": Succeed()})
    sim = Sim(wf, now=1000.0).start({"ship_at": "1970-01-01T00:20:00+00:00"})  # 1200 s
    assert sim.timers["wait:1"].fire_at == 1200.0
    sim.fire_timers()
    assert sim.run is not None
    assert sim.status() is RunStatus.SUCCEEDED
    bad = Sim(wf).start({"ship_at": "tomorrow"})
    assert bad.run is not None
    assert bad.run.status is RunStatus.FAILED
    assert bad.run.error is not None
    assert bad.run.error.type == "InvalidWaitUntil"


def test_cancel_compensates_by_default_and_not_when_asked() -> None:
    # s2 is running when the cancel comes: it drains, then it is undone too.
    for compensate, expected in ((True, ["s2", "s1"]), (False, [])):
        sim = Sim(saga()).start()
        sim.step()  # s1 done
        sim.feed(CancelRequested("ops", compensate=compensate))
        run = sim.drive()
        assert run.status is RunStatus.CANCELLED
        assert [d.state for d in sim.dispatched if d.kind is StepKind.COMPENSATION] == expected


def test_deadline_is_recorded_and_can_fail_the_run() -> None:
    wf = Workflow("sla", start="a", states={"a": Task(h)}, sla=10, on_deadline=OnDeadline.FAIL)
    sim = Sim(wf).start()
    assert sim.run is not None
    assert sim.run.deadline == sim.now + 10
    sim.fire_timers()
    assert sim.run.sla_met is False
    assert sim.status() is RunStatus.FAILED
    met = Sim(Workflow("sla", start="a", states={"a": Task(h)}, sla=10)).start()
    run = met.drive()
    assert run.sla_met is True
    assert "deadline" not in met.timers


@pytest.mark.parametrize(
    "event",
    [
        StepSucceeded(99, 1, None),
        StepSucceeded(1, 2, None),
        StepFailed(1, 1, boom(), kind=StepKind.COMPENSATION),
        SignalReceived("nobody-waits"),
        RetryRequested("ops"),
        SkipRequested("ops"),
    ],
)
def test_illegal_events_are_rejected_and_change_nothing(event: Any) -> None:
    sim = Sim(chain(2)).start()
    before = sim.run
    assert isinstance(sim.feed(event), Rejection)
    assert sim.run is before


def test_a_duplicate_result_is_rejected_after_the_first_applies() -> None:
    sim = Sim(chain(2)).start()
    command = sim.pending[0]
    assert isinstance(sim.feed(StepSucceeded(command.seq, 1, None)), Decision)
    again = sim.feed(StepSucceeded(command.seq, 1, None))
    assert isinstance(again, Rejection)
    assert "stale" in again.reason


def test_a_loop_back_through_a_choice_gets_a_fresh_step_visit() -> None:
    wf = Workflow(
        "loop",
        start="work",
        states={
            "work": Task(h, next="check"),
            "check": Choice([(Field("work_step") < 3, "work")], default="done"),
            "done": Succeed(),
        },
    )
    sim = Sim(wf).start()
    first = sim.pending[0]
    sim.step(lambda s, a, k: {"work_step": 1})
    second = sim.pending[0]
    assert second.state == "work"
    assert second.seq != first.seq
    # The first visit's message, delivered again, cannot touch the second visit.
    assert isinstance(sim.feed(StepSucceeded(first.seq, 1, None)), Rejection)


def test_error_info_is_kept_on_failed_attempts() -> None:
    sim = Sim(chain(1)).start()
    command = sim.pending.pop()
    error = ErrorInfo("shop.Declined", "card declined", "Traceback ...", ("shop.Declined", "Exception"))
    sim.feed(StepFailed(command.seq, 1, error, started_at=1.0, finished_at=1.5))
    failed = next(h for d in sim.decisions for h in d.history if h.kind == "step_failed")
    assert failed.detail["error"]["type"] == "shop.Declined"
    assert failed.detail["duration"] == 0.5


def test_time_spent_waiting_for_flow_control_limits_is_recorded_with_the_attempt() -> None:
    sim = Sim(chain(2)).start()
    first = sim.pending.pop()
    waited = (("payments", 1.25), ("psp", 0.5))
    sim.feed(StepSucceeded(first.seq, 1, None, started_at=3.0, finished_at=3.5, waited=waited))
    second = sim.pending.pop()
    error = ErrorInfo("shop.Down", "down", "", ("shop.Down",))
    sim.feed(StepFailed(second.seq, 1, error, waited=(("payments", 0.25),)))
    records = [h for d in sim.decisions for h in d.history if h.kind in ("step_succeeded", "step_failed")]
    assert [r.detail["waited"] for r in records] == [{"payments": 1.25, "psp": 0.5}, {"payments": 0.25}]
    assert records[0].detail["duration"] == 0.5


def test_evolve_copies_a_run_like_replace_does() -> None:
    from dataclasses import replace

    sim = Sim(chain(2)).start({"x": 1})
    assert sim.run is not None
    changes: dict[str, Any] = {"version": 9, "data": {"y": 2}, "status": RunStatus.SUCCEEDED}
    assert sim.run.evolve(**changes) == replace(sim.run, **changes)
    assert sim.run.version == 1  # the original is untouched
    with pytest.raises(TypeError, match="no field"):
        sim.run.evolve(colour="red")
