"""The transition function for steps in flight: early signals, interruptions,
and a leased step whose heartbeat timer fired. Pure, no I/O."""

from __future__ import annotations

from typing import Any

from legato import Approval, Branch, OnDeadline, Parallel, RetryPolicy, RunStatus, Succeed, Task, Workflow
from legato.machine.commands import Decision, Rejection
from legato.machine.events import CancelRequested, SignalReceived, TimerFired
from legato.machine.run import Phase
from legato.machine.signals import MAX_BUFFERED_SIGNALS, EarlySignal
from legato.machine.vocabulary import HistoryKind, TimerPurpose
from tests.unit.sim import Sim

BUFFER = EarlySignal.BUFFER


def h(ctx: Any) -> None:
    return None


def gated(**approval: Any) -> Workflow:
    return Workflow(
        "gated",
        start="prepare",
        states={
            "prepare": Task(h, next="first", compensate=h),
            "first": Approval("approve", next="second", **approval),
            "second": Approval("approve", next="done"),
            "done": Succeed(),
        },
    )


def test_early_signals_are_kept_and_consumed_in_arrival_order_one_per_approval() -> None:
    sim = Sim(gated(timeout=60)).start()
    for who in ("alice", "bob"):
        assert isinstance(sim.feed(SignalReceived("approve", {"by": who}, f"ops:{who}", BUFFER)), Decision)
    assert sim.run is not None
    assert [s.actor for s in sim.run.signals] == ["ops:alice", "ops:bob"]
    assert sim.status() is RunStatus.RUNNING
    sim.step()  # prepare finishes: both approvals are entered and take their signal
    assert sim.status() is RunStatus.SUCCEEDED
    assert sim.run.signals == ()
    received = [r for d in sim.decisions for r in d.history if r.kind == HistoryKind.SIGNAL_RECEIVED]
    assert [(r.state, r.actor, r.detail["data"]) for r in received] == [
        ("first", "ops:alice", {"by": "alice"}),
        ("second", "ops:bob", {"by": "bob"}),
    ]
    assert sim.run.data["by"] == "bob"
    # The approval took its signal as it was entered: no timeout timer was left.
    assert "approval:2" not in sim.timers
    assert HistoryKind.AWAITING_SIGNAL not in sim.kinds()


def test_a_kept_signal_waits_for_the_next_visit_when_one_is_enough() -> None:
    sim = Sim(gated()).start()
    sim.feed(SignalReceived("approve", {"n": 1}, "ops", BUFFER))
    sim.step()
    assert sim.run is not None
    assert sim.run.current_states == ("second",)
    assert [t.phase for t in sim.run.tokens] == [Phase.AWAITING_SIGNAL]
    sim.feed(SignalReceived("approve", {"n": 2}, "ops"))
    assert sim.status() is RunStatus.SUCCEEDED


def test_early_signals_that_cannot_be_kept_are_refused() -> None:
    sim = Sim(gated()).start()
    refused = sim.feed(SignalReceived("approve", {}, "ops", EarlySignal.REFUSE))
    assert isinstance(refused, Rejection)
    assert "not waiting for signal 'approve'" in refused.reason
    unknown = sim.feed(SignalReceived("nope", {}, "ops", BUFFER))
    assert isinstance(unknown, Rejection)
    assert "no approval of 'gated' ever does" in unknown.reason
    for _ in range(MAX_BUFFERED_SIGNALS):
        assert isinstance(sim.feed(SignalReceived("approve", {}, "ops", BUFFER)), Decision)
    full = sim.feed(SignalReceived("approve", {}, "ops", BUFFER))
    assert isinstance(full, Rejection)
    assert f"keeps {MAX_BUFFERED_SIGNALS} signals already" in full.reason


def test_a_compensating_run_keeps_no_signals() -> None:
    wf = Workflow(
        "p",
        start="par",
        states={
            "par": Parallel(
                [
                    Branch("a", {"a": Task(h, compensate=h)}),
                    Branch("b", {"b": Task(h, retry=RetryPolicy(max_attempts=1))}),
                ],
                next="gate",
            ),
            "gate": Approval("approve"),
        },
    )
    sim = Sim(wf).start()
    sim.step()  # a succeeds
    sim.feed(CancelRequested("ops"))
    assert sim.status() is RunStatus.COMPENSATING
    refused = sim.feed(SignalReceived("approve", {}, "ops", BUFFER))
    assert isinstance(refused, Rejection)
    assert "compensating" in refused.reason


def test_cancelling_records_that_the_running_steps_are_interrupted() -> None:
    sim = Sim(gated()).start()
    sim.feed(CancelRequested("ops", compensate=False))
    assert sim.status() is RunStatus.CANCELLED
    [line] = [r for d in sim.decisions for r in d.history if r.kind == HistoryKind.STEP_INTERRUPTED]
    assert (line.state, line.attempt, line.detail["reason"]) == ("prepare", 1, "the run was cancelled")


def test_a_deadline_that_fails_the_run_records_the_interruption_too() -> None:
    wf = Workflow("late", start="a", sla=10, on_deadline=OnDeadline.FAIL, states={"a": Task(h)})
    sim = Sim(wf).start()
    sim.fire_timers()
    assert sim.status() is RunStatus.FAILED
    kinds = sim.kinds()
    assert kinds.index(HistoryKind.SLA_MISSED) < kinds.index(HistoryKind.STEP_INTERRUPTED)


def leased() -> Workflow:
    return Workflow(
        "leased",
        start="crawl",
        retry=RetryPolicy(max_attempts=2, initial_delay=1.0, jitter=0.0),
        states={"crawl": Task(h, heartbeat_timeout=30)},
    )


def test_a_heartbeat_timer_fails_the_running_attempt_once_and_the_policy_retries_it() -> None:
    sim = Sim(leased()).start()
    fired = TimerFired("heartbeat:1", TimerPurpose.HEARTBEAT, 1, 1)
    assert isinstance(sim.feed(fired), Decision)
    assert [r.kind for r in sim.decisions[-1].history] == [
        HistoryKind.LEASE_EXPIRED,
        HistoryKind.STEP_FAILED,
        HistoryKind.RETRY_SCHEDULED,
    ]
    failed = [r for d in sim.decisions for r in d.history if r.kind == HistoryKind.STEP_FAILED]
    assert [f.detail["error"]["type"] for f in failed] == ["HeartbeatTimeout"]
    # The same expiry again (a second poller): the attempt is no longer running.
    assert isinstance(sim.feed(fired), Rejection)
    sim.fire_timers()  # the retry
    assert [(d.state, d.attempt) for d in sim.dispatched] == [("crawl", 1), ("crawl", 2)]
    # A heartbeat timer of the old attempt is stale for the new one.
    assert isinstance(sim.feed(fired), Rejection)
