"""The pure schedule decisions: next tick (DST table), catch-up, overlap, jitter."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from legato.errors import DefinitionError
from legato.machine.definition import Workflow
from legato.machine.schedules import (
    Cron,
    Every,
    Overlap,
    OverlapAction,
    ScheduleState,
    decide_overlap,
    jitter_for,
    plan_catch_up,
    plan_fire,
    tick_key,
)
from legato.machine.states import Succeed
from legato.machine.vocabulary import TickOutcome

PARIS = ZoneInfo("Europe/Paris")


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, tz: ZoneInfo = PARIS, fold: int = 0
) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=tz, fold=fold).timestamp()


DST = [
    # (expression, after, expected next tick) -- Europe/Paris
    # spring forward 2026-03-29: 02:00 -> 03:00; 02:30 does not exist and fires once at 03:00
    ("30 2 * * *", at(2026, 3, 28, 12), at(2026, 3, 29, 3, 0)),
    ("30 2 * * *", at(2026, 3, 29, 3, 0), at(2026, 3, 30, 2, 30)),
    ("0 9 * * *", at(2026, 3, 28, 12), at(2026, 3, 29, 9)),
    # fall back 2026-10-25: 03:00 -> 02:00; 02:30 happens twice and fires once, on the first pass
    ("30 2 * * *", at(2026, 10, 24, 12), at(2026, 10, 25, 2, 30, fold=0)),
    ("30 2 * * *", at(2026, 10, 25, 2, 30, fold=0), at(2026, 10, 26, 2, 30)),
    ("30 2 * * *", at(2026, 10, 25, 2, 10, fold=1), at(2026, 10, 26, 2, 30)),
    # weekdays only
    ("0 9 * * MON-FRI", at(2026, 12, 4, 10), at(2026, 12, 7, 9)),
]


@pytest.mark.parametrize(("expression", "after", "expected"), DST)
def test_next_tick_across_dst(expression: str, after: float, expected: float) -> None:
    assert Cron(expression, tz="Europe/Paris").next_after(after) == expected


def test_a_day_of_hourly_ticks_across_each_dst_change_fires_each_hour_once() -> None:
    cron = Cron("30 * * * *", tz="Europe/Paris")
    for day in ((2026, 3, 29), (2026, 10, 25)):
        tick, seen = at(*day, 0, 0), []
        while tick < at(*day, 23, 59):
            tick = cron.next_after(tick)
            seen.append(tick)
        assert len(seen) == len(set(seen))
        # 23 wall-clock hours in spring (02:30 is skipped: its tick is 03:00 and 03:30 also
        # fires), 25 real hours in autumn but the repeated 02:30 only once.
        assert sorted(seen) == seen


@given(st.floats(min_value=1, max_value=10_000), st.floats(min_value=0, max_value=2e9))
def test_every_ticks_on_multiples_strictly_after(seconds: float, after: float) -> None:
    every = Every(seconds)
    tick = every.next_after(after)
    assert after < tick <= after + seconds + 1e-6
    following = every.next_after(tick)  # from a tick, the next one: never the same, never two on
    assert following > tick
    assert round((following - tick) / seconds) == 1


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        (Cron("61 * * * *"), "invalid cron expression"),
        (Cron("0 9 * * *", tz="Europe/Pariss"), "unknown time zone 'Europe/Pariss'"),
        (Every(0), "positive number of seconds"),
        (Every(60, jitter=-1), "jitter"),
    ],
)
def test_an_invalid_schedule_is_refused_naming_workflow_and_schedule(
    schedule: Cron | Every, problem: str
) -> None:
    with pytest.raises(DefinitionError, match=rf"workflow 'report': schedule 'report': .*{problem}"):
        Workflow("report", "done", {"done": Succeed()}, schedules=[schedule])


def test_two_unnamed_schedules_are_refused() -> None:
    with pytest.raises(DefinitionError, match="share a name"):
        Workflow("report", "done", {"done": Succeed()}, schedules=[Every(60), Every(120)])


OVERLAP = [
    # policy, running, buffered -> action
    (Overlap.SKIP, False, False, OverlapAction.START),
    (Overlap.SKIP, True, False, OverlapAction.SKIP),
    (Overlap.BUFFER_ONE, True, False, OverlapAction.BUFFER),
    (Overlap.BUFFER_ONE, True, True, OverlapAction.SKIP),
    (Overlap.BUFFER_ONE, False, False, OverlapAction.START),
    (Overlap.CANCEL_OTHER, True, False, OverlapAction.CANCEL_AND_START),
    (Overlap.CANCEL_OTHER, False, False, OverlapAction.START),
    (Overlap.ALLOW_ALL, True, False, OverlapAction.START),
]


@pytest.mark.parametrize(("policy", "running", "buffered", "action"), OVERLAP)
def test_overlap_decision(policy: Overlap, running: bool, buffered: bool, action: OverlapAction) -> None:
    assert decide_overlap(policy, running, buffered) is action


def test_catch_up_fires_within_the_window_and_counts_the_rest_missed() -> None:
    every = Every(60, catch_up_window=150)
    plan = plan_catch_up(every, 600, now=1000)  # ticks 600..960 are due; cutoff 850
    assert (plan.missed, plan.first_missed, plan.last_missed) == (5, 600, 840)
    assert (plan.due, plan.next_tick) == (900, 960)


def test_catch_up_with_nothing_due_waits() -> None:
    plan = plan_catch_up(Every(60), 1020, now=1000)
    assert (plan.missed, plan.due, plan.next_tick) == (0, None, 1020)


@given(
    st.floats(min_value=1, max_value=600),
    st.floats(min_value=0, max_value=3600),
    st.floats(min_value=0, max_value=1e6),
    st.floats(min_value=0, max_value=1e6),
)
# Found by hypothesis: at a multiple the division rounded down, and the tick did not move.
@example(seconds=436.2237651360078, window=0.0, start=396528.0, gap=436.2237651360078)
def test_catch_up_never_fires_beyond_the_window_nor_loses_a_tick(
    seconds: float, window: float, start: float, gap: float
) -> None:
    every = Every(seconds, catch_up_window=window)
    first = every.next_after(start)
    now = first + gap
    plan = plan_catch_up(every, first, now)
    if plan.due is not None:
        assert now - window <= plan.due <= now
        assert plan.next_tick == every.next_after(plan.due)
    else:
        assert plan.next_tick > now
    if plan.missed:
        assert plan.last_missed is not None
        assert plan.last_missed < now - window


def state(overlap: Overlap, running: bool, buffered: float | None = None) -> ScheduleState:
    return ScheduleState("s", Every(60, overlap=overlap), 600, buffered, running)


def test_plan_fire_starts_the_due_tick_and_sets_the_next_timer() -> None:
    plan = plan_fire(state(Overlap.SKIP, running=False), now=601)
    assert plan.start == (600.0,)
    assert [line.outcome for line in plan.lines] == [TickOutcome.STARTED]
    assert (plan.next_tick, plan.timer_at, plan.cancel_running) == (660, 660, False)


def test_plan_fire_buffer_one_holds_the_tick_then_starts_it_once_the_run_ends() -> None:
    held = plan_fire(state(Overlap.BUFFER_ONE, running=True), now=601)
    assert not held.start
    assert held.buffered == 600
    assert held.timer_at < 660  # looks again before the next tick
    released = plan_fire(ScheduleState("s", Every(60, overlap=Overlap.BUFFER_ONE), 660, 600, False), 620)
    assert released.start == (600.0,)
    assert released.buffered is None


def test_plan_fire_cancel_other() -> None:
    plan = plan_fire(state(Overlap.CANCEL_OTHER, running=True), now=601)
    assert plan.cancel_running
    assert plan.start == (600.0,)


def test_plan_fire_records_missed_ticks_in_one_line() -> None:
    plan = plan_fire(ScheduleState("s", Every(60, catch_up_window=60), 0, None, False), now=1000)
    missed = [line for line in plan.lines if line.outcome is TickOutcome.MISSED]
    assert missed[0].count == 16
    assert plan.start == (960.0,)


def test_jitter_is_deterministic_per_tick_and_bounded() -> None:
    delays = {jitter_for("s", float(t), 30) for t in range(0, 6000, 60)}
    assert all(0 <= d < 30 for d in delays)
    assert len(delays) > 50
    assert jitter_for("s", 60.0, 30) == jitter_for("s", 60.0, 30)


def test_tick_key_names_the_schedule_and_the_nominal_time() -> None:
    assert (
        tick_key("nightly", at(2026, 1, 2, 9, tz=ZoneInfo("UTC")))
        == "schedule:nightly:2026-01-02T09:00:00.000+00:00"
    )
