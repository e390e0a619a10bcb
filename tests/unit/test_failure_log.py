"""What the log line of a failed attempt says comes next, for every way a step fails."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from legato import OnFailure, RetryPolicy, Succeed, Task, Workflow
from legato.machine.commands import Decision
from legato.machine.decide import decide, start_run
from legato.machine.events import StepFailed, StepSucceeded, TimerFired
from legato.machine.vocabulary import TimerPurpose
from legato.observe import AppliedInput
from legato.worker.failures import FailureLog
from tests.unit.sim import boom

NOW = 1_800_000_000.0


def h(ctx: Any) -> None:
    return None


def _workflow(on_failure: OnFailure, retry: RetryPolicy) -> Workflow:
    return Workflow(
        "order",
        start="a",
        retry=retry,
        on_failure=on_failure,
        states={"a": Task(h, next="b", compensate=h), "b": Task(h, next="end"), "end": Succeed()},
    )


def _lines(caplog: pytest.LogCaptureFixture, decision: Decision) -> list[logging.LogRecord]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, "legato.worker.failures"):
        FailureLog().applied(AppliedInput(decision, created=False))
    return [r for r in caplog.records if r.name == "legato.worker.failures"]


@pytest.mark.parametrize(
    ("on_failure", "expected"),
    [
        (OnFailure.COMPENSATE, "dead letter, compensation"),
        (OnFailure.FAIL, "dead letter, run failed"),
        (OnFailure.SUSPEND, "dead letter, suspended"),
    ],
)
def test_the_line_says_what_follows_giving_up(
    caplog: pytest.LogCaptureFixture, on_failure: OnFailure, expected: str
) -> None:
    wf = _workflow(on_failure, RetryPolicy(max_attempts=2, initial_delay=5, jitter=0))
    run = start_run(wf, "r-1", {}, NOW).run
    run = _apply(wf, run, StepSucceeded(1, 1, None))
    first = decide(wf, run, StepFailed(2, 1, boom("KeyError", "'sku'")), NOW + 1)
    assert isinstance(first, Decision)
    [retry] = _lines(caplog, first)
    assert retry.levelno == logging.WARNING
    assert (retry.run_id, retry.workflow, retry.state, retry.attempt) == ("r-1", "order", "b", 1)  # type: ignore[attr-defined]
    assert (retry.error_type, retry.error_message, retry.next) == ("KeyError", "'sku'", "retry")  # type: ignore[attr-defined]
    assert retry.retry_at == "2027-01-15T08:00:06.000+00:00"  # type: ignore[attr-defined]
    assert (
        retry.getMessage()
        == "run r-1: order.b attempt 1 failed: KeyError: 'sku'; retry at 2027-01-15T08:00:06.000+00:00"
    )
    retried = _apply(wf, first.run, TimerFired("retry:2", TimerPurpose.RETRY, 2, 2))
    last = decide(wf, retried, StepFailed(2, 2, boom("KeyError", "'sku'"), non_retryable=True), NOW + 7)
    assert isinstance(last, Decision)
    [given_up] = _lines(caplog, last)
    assert given_up.next == expected  # type: ignore[attr-defined]
    assert given_up.getMessage().endswith(f"attempt 2 failed: KeyError: 'sku'; next: {expected}")


def test_a_transition_without_a_failure_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    wf = _workflow(OnFailure.FAIL, RetryPolicy.none())
    assert _lines(caplog, start_run(wf, "r-2", {}, NOW)) == []


def _apply(wf: Workflow, run: Any, event: Any) -> Any:
    decision = decide(wf, run, event, NOW)
    assert isinstance(decision, Decision)
    return decision.run
