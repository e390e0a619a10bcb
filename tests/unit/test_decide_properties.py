"""Invariants of ``decide``, checked over random event sequences (hypothesis)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from legato import (
    Approval,
    Branch,
    Choice,
    Field,
    Parallel,
    RetryPolicy,
    RunStatus,
    Succeed,
    Task,
    Wait,
    Workflow,
)
from legato.machine.commands import Decision, Rejection
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
from legato.machine.run import TERMINAL_STATUSES, StepKind
from legato.machine.vocabulary import TimerPurpose
from tests.unit.sim import Sim, boom


def h(ctx: Any) -> None:
    return None


QUICK = RetryPolicy(max_attempts=2, initial_delay=1.0, jitter=0.5)

WORKFLOWS = [
    Workflow(
        "mixed",
        start="a",
        retry=QUICK,
        sla=50,
        states={
            "a": Task(h, next="route", compensate=h),
            "route": Choice([(Field("a_step") == 1, "fan")], default="gate"),
            "gate": Approval("go", next="fan", timeout=30, on_timeout="fan"),
            "fan": Parallel(
                [
                    Branch("x1", {"x1": Task(h, next="x2", compensate=h), "x2": Task(h)}),
                    Branch("y1", {"y1": Wait(seconds=5, next="y2"), "y2": Task(h, compensate=h)}),
                ],
                next="z",
            ),
            "z": Task(h),
        },
    ),
    Workflow(
        "plain",
        start="a",
        retry=QUICK,
        states={"a": Task(h, next="b"), "b": Task(h, next="c"), "c": Succeed()},
    ),
]


# Strategies are built once and only what is used is drawn: the hypothesis
# draws, not ``decide``, are what this test spends its time on.
SEQ = st.integers(0, 12)
ATTEMPT = st.integers(0, 4)
KIND = st.sampled_from(StepKind)
SIGNAL = st.sampled_from(["go", "stop"])
RETRY_ATTEMPT = st.integers(1, 3)
COMPENSATE = st.booleans()
GARBAGE: list[Callable[[st.DrawFn], Event]] = [
    lambda draw: StepSucceeded(draw(SEQ), draw(ATTEMPT), None, draw(KIND)),
    lambda draw: StepFailed(draw(SEQ), draw(ATTEMPT), boom()),
    lambda draw: TimerFired("retry:3", TimerPurpose.RETRY, 3, draw(RETRY_ATTEMPT)),
    lambda draw: TimerFired("deadline", TimerPurpose.DEADLINE),
    lambda draw: SignalReceived(draw(SIGNAL)),
    lambda draw: RetryRequested("ops"),
    lambda draw: SkipRequested("ops"),
    lambda draw: CancelRequested("ops", compensate=draw(COMPENSATE)),
]
WHICH_GARBAGE = st.integers(0, len(GARBAGE) - 1)
MOSTLY_LEGAL = st.integers(0, 9)


def legal_events(sim: Sim) -> list[Event]:
    """What the run's own commands and timers would deliver next."""
    options: list[Event] = []
    for command in sim.pending:
        options.append(
            StepSucceeded(
                command.seq, command.attempt, {f"k{command.seq % 3}": command.attempt}, command.kind
            )
        )
        options.append(StepFailed(command.seq, command.attempt, boom(), command.kind))
    for timer in sim.timers.values():
        options.append(TimerFired(timer.key, timer.purpose, timer.seq, timer.attempt))
    return options


@st.composite
def events_for(draw: st.DrawFn, sim: Sim) -> Event:
    """Mostly legal events from the run's own commands, sometimes garbage.

    Reads the simulator at each draw, so one strategy serves a whole run.
    """
    options = legal_events(sim)
    if options and draw(MOSTLY_LEGAL) < 8:
        return options[draw(st.integers(0, len(options) - 1))]
    return GARBAGE[draw(WHICH_GARBAGE)](draw)


def _consume(sim: Sim, event: Event) -> None:
    """Take a delivered command or timer off the simulator's to-do lists."""
    if isinstance(event, StepSucceeded | StepFailed):
        sim.pending = [
            c
            for c in sim.pending
            if not (c.seq == event.seq and c.attempt == event.attempt and c.kind is event.kind)
        ]
    if isinstance(event, TimerFired):
        timer = sim.timers.pop(event.key, None)
        if timer is not None:
            sim.now = max(sim.now, timer.fire_at)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(WORKFLOWS), st.data())
def test_invariants_hold_for_any_event_sequence(workflow: Workflow, data: st.DataObject) -> None:
    sim = Sim(workflow).start({"n": 0})
    events = events_for(sim)
    for _ in range(60):
        assert sim.run is not None
        before = sim.run
        event = data.draw(events)
        _consume(sim, event)
        outcome = sim.feed(event)
        if isinstance(outcome, Rejection):
            # Rejected: the run is untouched.
            assert sim.run is before
            continue
        # Applied: exactly one version more.
        assert outcome.run.version == before.version + 1
        assert outcome.previous_version == before.version
        # The keys the decision says it set rebuild its data from the run's: what a
        # store writes as a patch (store/postgres/rows.run_document) loses nothing.
        assert outcome.data_set is not None
        assert {**before.data, **{k: outcome.run.data[k] for k in outcome.data_set}} == outcome.run.data
        # A finished run never changes -- only an operator may resume a failed one.
        if before.status in TERMINAL_STATUSES:
            assert before.status is RunStatus.FAILED
            assert isinstance(event, RetryRequested | SkipRequested)
        # Tokens are unique per step visit.
        seqs = [t.seq for t in outcome.run.tokens]
        assert len(seqs) == len(set(seqs))
        assert all(t.seq < outcome.run.next_seq for t in outcome.run.tokens)
        if outcome.run.finished and outcome.run.status is not RunStatus.FAILED:
            assert outcome.run.tokens == ()


@settings(max_examples=300, deadline=None)
@given(
    branches=st.integers(2, 5),
    length=st.integers(1, 3),
    data=st.data(),
)
def test_a_parallel_join_fires_exactly_once_whatever_the_interleaving(
    branches: int, length: int, data: st.DataObject
) -> None:
    workflow = Workflow(
        "join",
        start="p",
        states={
            "p": Parallel(
                [
                    Branch(
                        f"b{i}_0",
                        {
                            f"b{i}_{j}": Task(h, next=f"b{i}_{j + 1}" if j < length - 1 else None)
                            for j in range(length)
                        },
                    )
                    for i in range(branches)
                ],
                next="after",
            ),
            "after": Task(h),
        },
    )
    sim = Sim(workflow).start()
    delivered = []
    while sim.pending:
        index = data.draw(st.integers(0, len(sim.pending) - 1))
        command = sim.pending[index]
        outcome = sim.step(index=index)
        assert isinstance(outcome, Decision)
        delivered.append(command)
        # Redeliver an old message now and then: it must be a no-op.
        if data.draw(st.booleans()):
            old = data.draw(st.sampled_from(delivered))
            assert isinstance(sim.feed(StepSucceeded(old.seq, old.attempt, None)), Rejection)
    assert sim.run is not None
    assert sim.run.status is RunStatus.SUCCEEDED
    joins = [h for d in sim.decisions for h in d.history if h.kind == "joined"]
    assert len(joins) == 1
    assert [c.state for c in sim.dispatched].count("after") == 1
    assert len(sim.dispatched) == branches * length + 1
