"""The timers role (:class:`~legato.store.ports.TimerStore`), on every backend."""

from __future__ import annotations

import anyio
import pytest

from legato import RunStatus
from legato.machine.commands import Decision
from legato.machine.decide import decide
from legato.machine.events import StepFailed, StepSucceeded, TimerFired
from legato.store.base import Applied, ConsumeTimer, GuardFailed
from legato.store.ports import Store
from legato.store.postgres import PostgresStore
from legato.store.sqlite import SqliteStore
from tests.contract.workflow import NOW, WF, started
from tests.unit.sim import boom


async def test_timers_are_scheduled_claimed_once_and_consumed_with_the_transition(store: Store) -> None:
    run = (await store.create_run(started())).run
    failed = decide(WF, run, StepFailed(1, 1, boom()), NOW + 1)
    assert isinstance(failed, Decision)
    assert isinstance(await store.apply(failed), Applied)
    assert await store.next_timer_at() == pytest.approx(NOW + 6)
    assert await store.claim_timers(NOW + 2, lease=30, limit=10) == []
    [timer] = await store.claim_timers(NOW + 7, lease=30, limit=10)
    assert (timer.key, timer.purpose, timer.seq, timer.attempt) == ("retry:1", "retry", 1, 2)
    # Leased: a second poller does not get it until the lease expires.
    assert await store.claim_timers(NOW + 8, lease=30, limit=10) == []
    [again] = await store.claim_timers(NOW + 40, lease=30, limit=10)
    assert again.id == timer.id
    fired = decide(WF, failed.run, TimerFired(timer.key, timer.purpose, timer.seq, timer.attempt), NOW + 41)
    assert isinstance(fired, Decision)
    applied = await store.apply(fired, ConsumeTimer(timer.id))
    assert isinstance(applied, Applied)
    assert len(applied.outbox) == 1
    # The same timer cannot fire twice.
    loaded = await store.load_run(run.id)
    assert loaded is not None
    stale = decide(WF, loaded, StepSucceeded(1, 2, None), NOW + 42)
    assert isinstance(stale, Decision)
    assert isinstance(await store.apply(stale, ConsumeTimer(timer.id)), GuardFailed)
    assert await store.claim_timers(NOW + 1000, lease=30, limit=10) == []


async def test_cancelled_timers_disappear(store: Store) -> None:
    run = (await store.create_run(started())).run
    d1 = decide(WF, run, StepSucceeded(1, 1, None), NOW)
    assert isinstance(d1, Decision)
    await store.apply(d1)
    d2 = decide(WF, d1.run, StepSucceeded(2, 1, None), NOW)
    assert isinstance(d2, Decision)
    await store.apply(d2)
    assert await store.next_timer_at() == pytest.approx(NOW + 60)  # the approval's timeout
    from legato.machine.events import SignalReceived

    d3 = decide(WF, d2.run, SignalReceived("go"), NOW)
    assert isinstance(d3, Decision)
    await store.apply(d3)
    assert d3.run.status is RunStatus.SUCCEEDED
    assert await store.next_timer_at() is None


async def test_a_subscriber_is_woken_once_for_each_timer_scheduled(store: Store) -> None:
    woken: list[float] = []
    changed = anyio.Event()

    def wake(fire_at: float) -> None:
        nonlocal changed
        woken.append(fire_at)
        changed.set()
        changed = anyio.Event()

    async def wait_for(fire_at: float) -> None:
        with anyio.fail_after(10):
            while fire_at not in woken:
                await changed.wait()

    for _ in range(3):  # the timer poller subscribes again on every cycle
        await store.subscribe_timers(wake)
    for offset in (1, 2):
        run = (await store.create_run(started())).run
        failed = decide(WF, run, StepFailed(1, 1, boom()), NOW + offset)
        assert isinstance(failed, Decision)
        assert isinstance(await store.apply(failed), Applied)
        await wait_for(NOW + offset + 5)  # the retry's timer
    # Notifications arrive in order: a second wake-up for the first timer would
    # have come before the one for the second.
    assert woken == [NOW + 6, NOW + 7]


async def _set_timer_purposes(store: Store, purpose: str) -> None:
    """What a newer version of legato could have written."""
    if isinstance(store, PostgresStore):
        await store.pool.execute("UPDATE timers SET purpose = $1", purpose)
    else:
        assert isinstance(store, SqliteStore)
        async with store._write() as db:
            await db.execute("UPDATE timers SET purpose = ?", (purpose,))


async def test_a_timer_of_a_purpose_this_version_does_not_know_is_left_for_a_newer_worker(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    run = (await store.create_run(started())).run
    failed = decide(WF, run, StepFailed(1, 1, boom()), NOW + 1)
    assert isinstance(failed, Decision)
    assert isinstance(await store.apply(failed), Applied)
    await _set_timer_purposes(store, "from_a_newer_version")
    # Claimed (so this poller does not spin on it) but not handed out: once the
    # claim runs out, a worker that knows the purpose gets it.
    assert await store.claim_timers(NOW + 7, lease=30, limit=10) == []
    assert "unknown to this version" in caplog.text
    await _set_timer_purposes(store, "retry")
    assert await store.claim_timers(NOW + 8, lease=30, limit=10) == []  # still claimed
    [timer] = await store.claim_timers(NOW + 40, lease=30, limit=10)
    assert timer.key == "retry:1"
