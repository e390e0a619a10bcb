"""The schedules role (:class:`~legato.store.ports.ScheduleStore`), on every backend."""

from __future__ import annotations

import pytest

from legato.machine.schedules import Cron, Every, Overlap, TickLine, tick_key
from legato.machine.vocabulary import TickOutcome
from legato.store.base import ScheduleFiring, ScheduleSource, StoredSchedule
from legato.store.ports import Store
from tests.contract.workflow import NOW, started


def stored(paused: bool = False, **options: object) -> StoredSchedule:
    schedule = Cron("0 9 * * MON-FRI", tz="Europe/Paris", name="daily", input={"k": 1}, **options)  # type: ignore[arg-type]
    return StoredSchedule("contract", schedule, ScheduleSource.CODE, paused, NOW + 60, NOW, NOW)


async def test_a_schedule_is_saved_read_back_replaced_and_deleted(store: Store) -> None:
    await store.save_schedule(stored(overlap=Overlap.BUFFER_ONE, jitter=5.0), NOW + 61)
    found = await store.get_schedule("daily")
    assert found is not None
    assert found.schedule == Cron(
        "0 9 * * MON-FRI",
        tz="Europe/Paris",
        name="daily",
        input={"k": 1},
        overlap=Overlap.BUFFER_ONE,
        jitter=5.0,
    )
    assert (found.workflow, found.source, found.paused) == ("contract", ScheduleSource.CODE, False)
    assert found.timer_at == pytest.approx(NOW + 61)
    # Saving again replaces it and its timer: one schedule, one timer.
    await store.save_schedule(stored(paused=True), None)
    [only] = await store.list_schedules()
    assert only.paused
    assert only.timer_at is None
    assert await store.next_timer_at() is None
    assert await store.list_schedules("other") == []
    assert await store.delete_schedule("daily")
    assert not await store.delete_schedule("daily")
    assert await store.get_schedule("daily") is None


async def test_an_interval_schedule_round_trips(store: Store) -> None:
    every = Every(90.5, name="often", overlap=Overlap.ALLOW_ALL, catch_up_window=10)
    await store.save_schedule(
        StoredSchedule("contract", every, ScheduleSource.RUNTIME, False, NOW, NOW, NOW), NOW
    )
    found = await store.get_schedule("often")
    assert found is not None
    assert found.schedule == every
    assert found.source is ScheduleSource.RUNTIME


async def test_a_firing_takes_the_timer_once_and_writes_run_lines_and_next_timer(store: Store) -> None:
    await store.save_schedule(stored(), NOW + 60)
    [timer] = await store.claim_timers(NOW + 60, lease=30, limit=10)
    assert (timer.schedule, timer.run_id, timer.purpose) == ("daily", None, "schedule")
    decision = started(key=f"contract:{tick_key('daily', NOW + 60)}")
    firing = ScheduleFiring(
        name="daily",
        at=NOW + 61,
        runs=((NOW + 60, decision),),
        lines=(TickLine(TickOutcome.MISSED, NOW - 100, 3), TickLine(TickOutcome.STARTED, NOW + 60)),
        timer_id=timer.id,
        next_tick=NOW + 120,
        timer_at=NOW + 121,
    )
    fired = await store.fire_schedule(firing)
    assert fired is not None
    assert [c.created for c in fired.created] == [True]
    # The same timer again (another replica, a retry after a crash): nothing is written.
    assert await store.fire_schedule(firing) is None
    schedule = await store.get_schedule("daily")
    assert schedule is not None
    assert schedule.next_tick == pytest.approx(NOW + 120)
    assert schedule.timer_at == pytest.approx(NOW + 121)
    assert schedule.last_run_id == decision.run.id
    ticks = await store.schedule_ticks("daily")
    assert [(t.outcome, t.count, t.run_id) for t in ticks] == [
        (TickOutcome.STARTED, 1, decision.run.id),
        (TickOutcome.MISSED, 3, None),
    ]
    assert await store.next_timer_at() == pytest.approx(NOW + 121)


async def test_a_tick_started_by_hand_twice_has_one_run(store: Store) -> None:
    await store.save_schedule(stored(), NOW + 60)
    key = f"contract:{tick_key('daily', NOW)}"
    first = started(key=key)
    firing = ScheduleFiring("daily", NOW, ((NOW, first),), (TickLine(TickOutcome.TRIGGERED, NOW),))
    one = await store.fire_schedule(firing)
    again = await store.fire_schedule(
        ScheduleFiring("daily", NOW, ((NOW, started(key=key)),), (TickLine(TickOutcome.TRIGGERED, NOW),))
    )
    assert one is not None
    assert again is not None
    assert [c.created for c in (*one.created, *again.created)] == [True, False]
    assert again.created[0].run.id == first.run.id
    # A firing by hand leaves the schedule's timer alone.
    schedule = await store.get_schedule("daily")
    assert schedule is not None
    assert schedule.timer_at == pytest.approx(NOW + 60)


async def test_deleting_a_schedule_deletes_its_timer_and_history(store: Store) -> None:
    await store.save_schedule(stored(), NOW + 60)
    await store.fire_schedule(ScheduleFiring("daily", NOW, (), (TickLine(TickOutcome.SKIPPED_OVERLAP, NOW),)))
    assert await store.delete_schedule("daily")
    assert await store.next_timer_at() is None
    assert await store.schedule_ticks("daily") == []
