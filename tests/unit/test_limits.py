"""Token-bucket arithmetic and limit declarations: pure, time passed in."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from legato.machine.limits import (
    Bucket,
    ConcurrencyLimit,
    LimitUse,
    RateLimit,
    bucket_name,
    full_at,
    give_back,
    level,
    ready_at,
    reserve,
    take,
)

# rate 2/s, capacity 4 in every case below.
RATE, CAP = 2.0, 4

LEVELS = [
    # bucket (tokens, at), now, expected level
    ((4.0, 0.0), 0.0, 4.0),
    ((0.0, 0.0), 1.0, 2.0),
    ((0.0, 0.0), 10.0, 4.0),  # never above capacity
    ((1.0, 5.0), 4.0, 1.0),  # time going backwards adds nothing
    ((-3.0, 0.0), 1.0, -1.0),  # a debt is paid off by the refill
]


@pytest.mark.parametrize(("state", "now", "expected"), LEVELS)
def test_level(state: tuple[float, float], now: float, expected: float) -> None:
    assert level(Bucket(*state), RATE, CAP, now) == pytest.approx(expected)


TAKES = [
    # bucket, now, count, tokens left (None: refused)
    ((4.0, 0.0), 0.0, 1, 3.0),
    ((4.0, 0.0), 0.0, 4, 0.0),
    ((4.0, 0.0), 0.0, 5, None),
    ((0.0, 0.0), 0.4, 1, None),  # 0.8 tokens so far
    ((0.0, 0.0), 0.5, 1, 0.0),
    ((0.0, 0.0), 0.5 - 1e-12, 1, 0.0),  # float slack: a hair short still counts
]


@pytest.mark.parametrize(("state", "now", "count", "left"), TAKES)
def test_take(state: tuple[float, float], now: float, count: int, left: float | None) -> None:
    after = take(Bucket(*state), RATE, CAP, now, count)
    if left is None:
        assert after is None
    else:
        assert after is not None
        assert after.tokens == pytest.approx(left, abs=1e-6)
        assert after.at == max(state[1], now)


READY = [
    # bucket, now, count, when the bucket holds count tokens
    ((4.0, 0.0), 1.0, 1, 1.0),
    ((0.0, 0.0), 0.0, 1, 0.5),
    ((0.0, 0.0), 0.0, 3, 1.5),
    ((-2.0, 0.0), 0.0, 1, 1.5),
    ((0.0, 0.0), 0.0, 5, math.inf),  # more than the bucket can ever hold
]


@pytest.mark.parametrize(("state", "now", "count", "expected"), READY)
def test_ready_at(state: tuple[float, float], now: float, count: int, expected: float) -> None:
    assert ready_at(Bucket(*state), RATE, CAP, now, count) == pytest.approx(expected)


RESERVES = [
    # bucket, now, count, tokens after, valid from
    ((4.0, 0.0), 0.0, 3, 1.0, 0.0),
    ((1.0, 0.0), 0.0, 3, -2.0, 1.0),
    ((-2.0, 0.0), 0.0, 2, -4.0, 2.0),
    ((-2.0, 0.0), 3.0, 2, 2.0, 3.0),  # refilled to 4 by then
]


@pytest.mark.parametrize(("state", "now", "count", "tokens", "valid_from"), RESERVES)
def test_reserve(
    state: tuple[float, float], now: float, count: int, tokens: float, valid_from: float
) -> None:
    after, when = reserve(Bucket(*state), RATE, CAP, now, count)
    assert after.tokens == pytest.approx(tokens)
    assert when == pytest.approx(valid_from)


def test_give_back_and_full_at() -> None:
    assert give_back(Bucket(3.5, 0.0), RATE, CAP, 0.0).tokens == CAP
    assert give_back(Bucket(0.0, 0.0), RATE, CAP, 0.5).tokens == pytest.approx(2.0)
    assert full_at(Bucket(0.0, 10.0), RATE, CAP) == pytest.approx(12.0)
    assert full_at(Bucket(-4.0, 10.0), RATE, CAP) == pytest.approx(14.0)
    assert full_at(Bucket(4.0, 10.0), RATE, CAP) == pytest.approx(10.0)


def _max_in_window(times: list[float], width: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] < t - width - 1e-9:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 50),
    capacity=st.integers(1, 10),
    steps=st.lists(st.tuples(st.floats(0, 2), st.integers(1, 10)), min_size=1, max_size=60),
    width=st.floats(0.05, 5),
)
def test_reserved_tokens_in_any_window_stay_within_rate_times_width_plus_capacity(
    rate: float, capacity: int, steps: list[tuple[float, int]], width: float
) -> None:
    bucket, now, valid = Bucket.full(capacity, 0.0), 0.0, []
    for gap, count in steps:
        now += gap
        count = min(count, capacity)
        bucket, when = reserve(bucket, rate, capacity, now, count)
        assert when >= now
        valid += [when] * count
    assert _max_in_window(valid, width) <= rate * width + capacity + 1e-6


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 50),
    capacity=st.integers(1, 10),
    attempts=st.lists(st.floats(0, 0.5), min_size=1, max_size=200),
    width=st.floats(0.05, 5),
)
def test_takes_in_any_window_stay_within_rate_times_width_plus_capacity(
    rate: float, capacity: int, attempts: list[float], width: float
) -> None:
    bucket, now, taken = Bucket.full(capacity, 0.0), 0.0, []
    for gap in attempts:
        now += gap
        after = take(bucket, rate, capacity, now)
        if after is not None:
            bucket = after
            taken.append(now)
    assert _max_in_window(taken, width) <= rate * width + capacity + 1e-6


@pytest.mark.parametrize(
    ("limit", "capacity", "batch", "hold"),
    [
        (RateLimit("a", 20, burst=10), 5, 4, 0.25),
        (RateLimit("a", 20, burst=10, batch=50), 5, 5, 0.25),  # a batch never exceeds the store's capacity
        (RateLimit("a", 100, per=60, burst=4), 2, 1, 1.2),
        (RateLimit("a", 5, burst=1), 1, 1, 0.2),  # burst 1: the bound is rate * T + 2 (see LeasePlan)
        (RateLimit("a", 20), 5, 4, 0.25),  # default burst: half a second's worth
    ],
)
def test_a_global_bucket_splits_its_burst_between_the_store_and_the_leases(
    limit: RateLimit, capacity: int, batch: int, hold: float
) -> None:
    plan = limit.lease_plan()
    assert (plan.capacity, plan.batch) == (capacity, batch)
    assert plan.hold == pytest.approx(hold)
    if limit.capacity >= 2:
        assert plan.capacity + plan.hold * limit.per_second == pytest.approx(limit.capacity)


@pytest.mark.parametrize(
    ("limit", "problem"),
    [
        (RateLimit("", 1), "needs a name"),
        (RateLimit("a b", 1), "needs a name"),
        (RateLimit("a:b", 1), "must not contain ':'"),
        (RateLimit("a", 0), "rate must be a positive number"),
        (RateLimit("a", 1, per=-1), "per must be a positive number"),
        (RateLimit("a", 1, burst=0), "burst must be an integer >= 1"),
        (RateLimit("a", 1, batch=0), "batch must be an integer >= 1"),
        (RateLimit("a", 1, scope="cluster"), "scope must be 'process' or 'global'"),  # type: ignore[arg-type]
        (ConcurrencyLimit("a", 0), "limit must be an integer >= 1"),
        (ConcurrencyLimit("a", 2, lease=0), "lease must be a positive number"),
    ],
)
def test_illegal_declarations_say_what_is_wrong(limit: RateLimit | ConcurrencyLimit, problem: str) -> None:
    assert any(problem in p for p in limit.problems()), limit.problems()


@pytest.mark.parametrize(
    ("key", "data", "bucket"),
    [
        (None, {"customer": {"id": "c1"}}, "payments"),
        ("customer.id", {"customer": {"id": "c1"}}, "payments:c1"),
        ("customer.id", {"customer": {"id": 42}}, "payments:42"),
        ("customer", {"customer": {"b": 1, "a": 2}}, 'payments:{"a":2,"b":1}'),
        ("customer.id", {}, "payments"),  # no key: the shared bucket
        ("customer.id", {"customer": {"id": None}}, "payments"),
        ("items.0", {"items": ["x" * 500]}, "payments:sha256:"),
    ],
)
def test_a_key_splits_a_limit_into_buckets(key: str | None, data: dict[str, Any], bucket: str) -> None:
    assert bucket_name(LimitUse("payments", key, "rate"), data).startswith(bucket)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(1, 50),
    burst=st.integers(1, 20),
    batch=st.none() | st.integers(1, 20),
    reservations=st.lists(
        st.tuples(st.floats(0, 0.5), st.integers(1, 20), st.lists(st.floats(0, 1), max_size=20)),
        min_size=1,
        max_size=40,
    ),
    width=st.floats(0.1, 3),
)
def test_a_global_limit_never_starts_more_than_rate_times_width_plus_burst(
    rate: float,
    burst: int,
    batch: int | None,
    reservations: list[tuple[float, int, list[float]]],
    width: float,
) -> None:
    """Workers reserve batches from the store's bucket and spend each token any
    time within ``hold`` of its start (or never): starts still obey the burst
    (one more for a burst of 1, which cannot be split between store and leases)."""
    plan = RateLimit("g", rate, burst=burst, batch=batch).lease_plan()
    bucket, now, starts = Bucket.full(plan.capacity, 0.0), 0.0, []
    for gap, want, delays in reservations:
        now += gap
        count = min(want, plan.batch)
        bucket, valid_from = reserve(bucket, rate, plan.capacity, now, count)
        starts += [valid_from + min(d, 1.0) * plan.hold for d in delays[:count]]
    assert _max_in_window(starts, width) <= rate * width + max(burst, 2) + 1e-6
