"""The supervisor's restart policy (worker/restarts.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from legato.worker.restarts import GiveUp, Restart, RestartPolicy


def test_a_single_death_restarts_at_once_and_repeated_ones_back_off() -> None:
    policy = RestartPolicy(first_delay=0.5, max_delay=3.0, give_up_after=6, window=60)
    answers = [policy.died(t) for t in (0, 1, 2, 3, 4)]
    assert answers == [Restart(0.0, 1), Restart(0.5, 2), Restart(1.0, 3), Restart(2.0, 4), Restart(3.0, 5)]
    assert policy.died(5) == GiveUp(6, 60)


def test_deaths_outside_the_window_are_forgotten() -> None:
    policy = RestartPolicy(give_up_after=3, window=10)
    assert isinstance(policy.died(0), Restart)
    assert isinstance(policy.died(5), Restart)
    # The first death is 10 s old: two within the window, not three.
    assert policy.died(10) == Restart(policy.first_delay, 2)
    assert policy.died(11) == GiveUp(3, 10)


@given(st.lists(st.floats(0, 1000), min_size=1, max_size=50).map(sorted))
def test_it_gives_up_exactly_when_too_many_deaths_fall_in_one_window(times: list[float]) -> None:
    policy = RestartPolicy(give_up_after=4, window=30)
    for index, at in enumerate(times):
        answer = policy.died(at)
        recent = [t for t in times[: index + 1] if t > at - 30]
        if len(recent) >= 4:
            assert answer == GiveUp(len(recent), 30)
            return
        assert isinstance(answer, Restart)
        assert answer.deaths == len(recent)
        assert 0 <= answer.delay <= policy.max_delay
