"""Retry policies are pure decisions: table-driven."""

from __future__ import annotations

import pytest

from legato.machine.errors import ErrorInfo
from legato.machine.policies import GiveUp, RetryPolicy, decide_retry, spread_for

TIMEOUT = ErrorInfo("TimeoutError", "slow", lineage=("TimeoutError", "OSError", "Exception"))
VALUE = ErrorInfo("ValueError", "bad", lineage=("ValueError", "Exception"))
CUSTOM = ErrorInfo(
    "shop.PaymentDeclined", "no", lineage=("shop.PaymentDeclined", "shop.ShopError", "Exception")
)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0)],
)
def test_default_ladder_is_1_2_4_8_16_seconds(attempt: int, expected: float) -> None:
    policy = RetryPolicy()
    assert policy.base_delay(attempt) == expected
    verdict = decide_retry(policy, attempt, VALUE, spread=0.5)
    assert verdict.delay == pytest.approx(expected)


def test_default_gives_up_after_six_attempts_five_retries() -> None:
    assert RetryPolicy().max_attempts == 6
    assert decide_retry(RetryPolicy(), 6, VALUE, 0.5).give_up is GiveUp.EXHAUSTED


@pytest.mark.parametrize(
    ("policy", "attempts_used", "error", "requested", "non_retryable", "delay", "give_up"),
    [
        (RetryPolicy(max_attempts=3), 1, VALUE, None, False, 1.0, None),
        (RetryPolicy(max_attempts=3), 3, VALUE, None, False, None, GiveUp.EXHAUSTED),
        (RetryPolicy(initial_delay=0.5, factor=3), 3, VALUE, None, False, 4.5, None),
        (RetryPolicy(initial_delay=10, max_delay=15), 3, VALUE, None, False, 15.0, None),
        (RetryPolicy(retry_on=("OSError",)), 1, TIMEOUT, None, False, 1.0, None),
        (RetryPolicy(retry_on=("OSError",)), 1, VALUE, None, False, None, GiveUp.NON_RETRYABLE),
        (RetryPolicy(non_retryable=("ValueError",)), 1, VALUE, None, False, None, GiveUp.NON_RETRYABLE),
        (RetryPolicy(non_retryable=("shop.ShopError",)), 1, CUSTOM, None, False, None, GiveUp.NON_RETRYABLE),
        (RetryPolicy(non_retryable=("ShopError",)), 1, CUSTOM, None, False, None, GiveUp.NON_RETRYABLE),
        (RetryPolicy(), 1, VALUE, 7.5, False, 7.5, None),
        (RetryPolicy(max_attempts=2), 2, VALUE, 7.5, False, None, GiveUp.EXHAUSTED),
        (RetryPolicy(), 1, VALUE, None, True, None, GiveUp.NON_RETRYABLE),
        (RetryPolicy.none(), 1, VALUE, None, False, None, GiveUp.EXHAUSTED),
    ],
)
def test_retry_decisions(
    policy: RetryPolicy,
    attempts_used: int,
    error: ErrorInfo,
    requested: float | None,
    non_retryable: bool,
    delay: float | None,
    give_up: GiveUp | None,
) -> None:
    verdict = decide_retry(
        RetryPolicy(**{**policy.__dict__, "jitter": 0.0}), attempts_used, error, 0.9, requested, non_retryable
    )
    assert verdict.give_up is give_up
    assert verdict.delay == (pytest.approx(delay) if delay is not None else None)


@pytest.mark.parametrize("spread", [0.0, 0.25, 0.5, 0.75, 0.999])
def test_jitter_stays_within_its_fraction(spread: float) -> None:
    policy = RetryPolicy(initial_delay=2.0, jitter=0.1)
    delay = policy.delay(1, spread)
    assert 1.8 <= delay <= 2.2


def test_spread_is_deterministic_and_varies_between_runs() -> None:
    assert spread_for("run-a", 1, 1) == spread_for("run-a", 1, 1)
    spreads = {spread_for(f"run-{i}", 1, 1) for i in range(50)}
    assert len(spreads) == 50
    assert all(0 <= s < 1 for s in spreads)


def test_create_takes_exception_classes() -> None:
    class Declined(Exception):
        pass

    policy = RetryPolicy.create(retry_on=(ConnectionError,), non_retryable=(Declined,))
    assert policy.retry_on == ("ConnectionError",)
    assert policy.non_retryable[0].endswith("Declined")
