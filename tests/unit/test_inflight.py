"""The registry of running attempts: which run ends stop them, and a remembered end
that a resume has overtaken (worker/inflight.py)."""

from __future__ import annotations

import pytest

from legato.clock import ManualClock
from legato.interruption import Interruption
from legato.machine.run import RunStatus, StepKind
from legato.worker.inflight import REMEMBER_FOR, InFlight

RUN = "run-1"


def registered(inflight: InFlight, kind: StepKind = StepKind.STEP) -> tuple[Interruption, RunStatus | None]:
    stop = Interruption(kind)
    return stop, inflight.add(RUN, stop)


def test_an_end_heard_while_the_attempt_runs_interrupts_it() -> None:
    inflight = InFlight(ManualClock())
    stop, remembered = registered(inflight)
    assert remembered is None
    inflight.run_changed(RUN, RunStatus.CANCELLED)
    assert stop.requested
    assert stop.reason == "the run was cancelled"


def test_an_end_heard_before_the_attempt_registered_is_reported_not_acted_on() -> None:
    inflight = InFlight(ManualClock())
    inflight.run_changed(RUN, RunStatus.FAILED)
    stop, remembered = registered(inflight)
    assert remembered is RunStatus.FAILED
    assert not stop.requested  # the caller reads the run first


@pytest.mark.parametrize("now", [RunStatus.FAILED, RunStatus.CANCELLED, None])
def test_a_confirmed_end_interrupts_the_attempt(now: RunStatus | None) -> None:
    inflight = InFlight(ManualClock())
    inflight.run_changed(RUN, RunStatus.FAILED)
    stop, remembered = registered(inflight)
    assert remembered is not None
    inflight.confirm(RUN, stop, remembered, now)
    assert stop.requested
    assert inflight.interrupted == 1


@pytest.mark.parametrize("now", [RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.SUSPENDED])
def test_a_run_resumed_since_keeps_its_attempt_and_forgets_the_end(now: RunStatus) -> None:
    # A replay's step reached the worker before the notification that the run
    # is running again: the fresh read says so, and the step runs.
    inflight = InFlight(ManualClock())
    inflight.run_changed(RUN, RunStatus.FAILED)
    stop, remembered = registered(inflight)
    assert remembered is not None
    inflight.confirm(RUN, stop, remembered, now)
    assert not stop.requested
    assert inflight.interrupted == 0
    _, again = registered(inflight)
    assert again is None


def test_compensating_stops_steps_but_not_compensations() -> None:
    inflight = InFlight(ManualClock())
    inflight.run_changed(RUN, RunStatus.COMPENSATING)
    step, remembered = registered(inflight)
    compensation = Interruption(StepKind.COMPENSATION)
    assert inflight.add(RUN, compensation) is RunStatus.COMPENSATING
    assert remembered is not None
    inflight.confirm(RUN, step, remembered, RunStatus.COMPENSATING)
    inflight.confirm(RUN, compensation, remembered, RunStatus.COMPENSATING)
    assert step.requested
    assert not compensation.requested


def test_an_end_is_remembered_for_a_while_only() -> None:
    clock = ManualClock()
    inflight = InFlight(clock)
    inflight.run_changed(RUN, RunStatus.CANCELLED)
    clock.advance(REMEMBER_FOR + 1)
    _, remembered = registered(inflight)
    assert remembered is None
