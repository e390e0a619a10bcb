"""Stride scheduling: the weighted order in which slots and tokens go to priority levels."""

from __future__ import annotations

import collections

import pytest

from legato.flow.stride import DEFAULT_WEIGHTS, Stride, weights_by_level

QUEUES = ("ns.tasks.high", "ns.tasks.normal", "ns.tasks.low")


def test_with_a_backlog_everywhere_picks_follow_the_weights() -> None:
    stride: Stride[str] = Stride(weights_by_level(DEFAULT_WEIGHTS))
    for queue in QUEUES:
        for i in range(1000):
            stride.push(queue, f"{queue}:{i}")
    picked = collections.Counter(str(stride.pick()).split(":")[0] for _ in range(13 * 20))
    assert picked == {"ns.tasks.high": 160, "ns.tasks.normal": 80, "ns.tasks.low": 20}


def test_low_priority_is_never_starved_by_a_stream_of_high() -> None:
    stride: Stride[str] = Stride(weights_by_level(DEFAULT_WEIGHTS))
    for i in range(50):
        stride.push("ns.tasks.low", f"low{i}")
    got = []
    for i in range(90):
        stride.push("ns.tasks.high", f"high{i}")  # high work keeps arriving
        got.append(stride.pick())
    assert sum(str(g).startswith("low") for g in got) == 10  # one in nine


@pytest.mark.parametrize("idle_picks", [0, 5, 500])
def test_a_queue_that_was_idle_rejoins_without_credit_or_debt(idle_picks: int) -> None:
    stride: Stride[str] = Stride(weights_by_level(DEFAULT_WEIGHTS))
    for i in range(1000):
        stride.push("ns.tasks.low", f"low{i}")
    for _ in range(idle_picks):
        stride.pick()
    stride.push("ns.tasks.high", "urgent")
    assert stride.pick() == "urgent"  # overtakes the backlog at once...
    for i in range(16):
        stride.push("ns.tasks.high", f"urgent{i}")
    # ... but gets no credit for the time it was idle: the 8:1 ratio holds from here on.
    following = [str(stride.pick()) for _ in range(18)]
    assert sum(p.startswith("low") for p in following) == 2


def test_front_pushes_go_first_in_their_queue_and_drain_returns_everything() -> None:
    stride: Stride[str] = Stride(weights_by_level(DEFAULT_WEIGHTS))
    stride.push("q.normal", "b")
    stride.push("q.normal", "a", front=True)
    assert len(stride) == 2
    assert [stride.pick(), stride.pick()] == ["a", "b"]
    stride.push("q.low", "x")
    assert stride.drain() == ["x"]
    assert stride.pick() is None
