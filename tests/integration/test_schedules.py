"""Schedules on real Postgres: replicas racing on the same ticks, a SIGKILL in
the middle of a tick, catch-up after a gap with no worker, each overlap policy."""

from __future__ import annotations

import itertools
import signal
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from legato import App, Approval, RunStatus, Succeed, Workflow
from legato.clock import ManualClock
from legato.engine import Engine
from legato.machine.events import SignalReceived
from legato.machine.schedules import Every, Overlap, tick_key
from legato.machine.vocabulary import TickOutcome
from legato.observe import Observer, ScheduleFiredInput
from legato.scheduling.manage import Reconciled, Schedules
from legato.store.postgres import PostgresStore
from legato.worker.timers import TimerPoller
from tests.conftest import PG_DSN, worker_env
from tests.integration.harness import all_runs, eventually, spawn_worker

TICKING = "tests.apps.ticking:app"


async def started_nominals(store: PostgresStore, name: str) -> list[float]:
    ticks = await store.schedule_ticks(name, limit=100_000)
    return sorted(t.nominal for t in ticks if t.outcome is TickOutcome.STARTED)


async def assert_each_tick_one_run(store: PostgresStore, name: str) -> list[float]:
    nominals = await started_nominals(store, name)
    assert len(nominals) == len(set(nominals)), Counter(nominals).most_common(3)
    runs = list(await all_runs(store, "ticking"))
    keys = Counter(r.idempotency_key for r in runs)
    assert keys == Counter(f"ticking:{tick_key(name, n)}" for n in nominals)
    return nominals


async def test_three_worker_processes_fire_each_tick_once(
    pg_store: PostgresStore, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    env = worker_env(pg_schema, namespace, LEGATO_TIMER_POLL_INTERVAL="0.05")
    log = tmp_path / "workers.log"
    workers = [spawn_worker(TICKING, env, "--concurrency", "4", log=log) for _ in range(3)]
    try:

        async def enough() -> bool:
            return len(await started_nominals(pg_store, "every-second")) >= 8

        await eventually(enough, timeout=60, interval=0.2)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=30) for process in workers]
    assert codes == [0, 0, 0], log.read_text()
    nominals = await assert_each_tick_one_run(pg_store, "every-second")
    # No tick between the first and the last was lost: one second apart each.
    assert [b - a for a, b in itertools.pairwise(nominals)] == [1.0] * (len(nominals) - 1)
    [stored] = await pg_store.list_schedules()
    assert stored.name == "every-second"  # three reconciliations, one schedule


async def test_sigkill_in_the_middle_of_a_tick_loses_and_doubles_nothing(
    pg_store: PostgresStore, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    env = worker_env(pg_schema, namespace, LEGATO_TIMER_POLL_INTERVAL="0.05", LEGATO_TIMER_LEASE="1")
    log = tmp_path / "workers.log"
    victim = spawn_worker(TICKING, env, "--concurrency", "4", log=log)
    try:
        await eventually(lambda: started_nominals(pg_store, "every-second"), timeout=60, interval=0.1)
        # Hold the schedule's history table: the next firing takes its timer and
        # inserts its run, then waits to write its history line, inside its
        # transaction. Kill it there.
        blocker = await asyncpg.connect(PG_DSN, server_settings={"search_path": pg_schema})
        try:
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("LOCK TABLE schedule_ticks IN EXCLUSIVE MODE")

            async def firing_blocked() -> bool:
                # The firing waits for the lock this connection holds.
                waiting = await blocker.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
                )
                return bool(waiting)

            await eventually(firing_blocked, timeout=30, interval=0.05)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            await tx.rollback()
        finally:
            await blocker.close()
        killed_at = max(await started_nominals(pg_store, "every-second"))
        survivor = spawn_worker(TICKING, env, "--concurrency", "4", log=log)
        try:

            async def resumed() -> bool:
                return max(await started_nominals(pg_store, "every-second")) >= killed_at + 3

            await eventually(resumed, timeout=60, interval=0.2)
        finally:
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(timeout=30) == 0, log.read_text()
    finally:
        if victim.poll() is None:
            victim.kill()
    nominals = await assert_each_tick_one_run(pg_store, "every-second")
    # The tick the kill interrupted fired afterwards, once (ticks missed meanwhile are
    # caught up: the window is an hour); none is missing between first and last.
    assert [b - a for a, b in itertools.pairwise(nominals)] == [1.0] * (len(nominals) - 1)


# In-process, with an injected clock --------------------------------------------

GATE = Workflow("gated", start="gate", states={"gate": Approval("go", next="done"), "done": Succeed()})


class Seen(Observer):
    def __init__(self) -> None:
        self.fired: list[ScheduleFiredInput] = []

    def schedule_fired(self, fired: ScheduleFiredInput) -> None:
        self.fired.append(fired)


@pytest.fixture
async def world(pg_store: PostgresStore) -> tuple[Schedules, TimerPoller, ManualClock, Seen]:
    app = App()
    app.register(GATE)
    clock = ManualClock(start=1_800_000_000.0)  # a multiple of 60: ticks fall on it
    seen = Seen()
    engine = Engine(app, pg_store, None, clock, seen)
    schedules = Schedules(app, engine, pg_store, clock)
    poller = TimerPoller(engine, pg_store, clock, schedules=schedules.firer)
    return schedules, poller, clock, seen


async def test_catch_up_after_a_gap_fires_within_the_window_and_records_the_rest_missed(
    pg_store: PostgresStore, world: tuple[Schedules, TimerPoller, ManualClock, Seen]
) -> None:
    schedules, poller, clock, seen = world
    start = clock.now()
    await schedules.create(
        "gated", Every(60, name="minutely", overlap=Overlap.ALLOW_ALL, catch_up_window=150)
    )
    clock.advance(3600 + 30)  # an hour and a half-minute with no worker
    while await poller.fire_due():
        pass
    nominals = await started_nominals(pg_store, "minutely")
    # Within the window (the last 150 s): the ticks at +3480, +3540, +3600; one run each.
    assert nominals == [start + 3480, start + 3540, start + 3600]
    ticks = await pg_store.schedule_ticks("minutely")
    [missed] = [t for t in ticks if t.outcome is TickOutcome.MISSED]
    assert (missed.nominal, missed.count) == (start + 60, 57)  # +60 .. +3420, never fired
    assert sum(line.count for f in seen.fired for line in f.lines if line.outcome is TickOutcome.MISSED) == 57
    assert len(await all_runs(pg_store, "gated")) == 3
    stored = await schedules.get("minutely")
    assert stored.next_tick == start + 3660


async def fire_tick(poller: TimerPoller, clock: ManualClock) -> None:
    clock.advance(60)
    assert await poller.fire_due() == 1


@pytest.mark.parametrize(
    ("overlap", "outcomes", "running"),
    [
        (Overlap.SKIP, [TickOutcome.STARTED, TickOutcome.SKIPPED_OVERLAP], 1),
        (Overlap.BUFFER_ONE, [TickOutcome.STARTED, TickOutcome.BUFFERED, TickOutcome.SKIPPED_OVERLAP], 1),
        (Overlap.CANCEL_OTHER, [TickOutcome.STARTED, TickOutcome.CANCELLED_OTHER, TickOutcome.STARTED], 1),
        (Overlap.ALLOW_ALL, [TickOutcome.STARTED, TickOutcome.STARTED, TickOutcome.STARTED], 3),
    ],
)
async def test_each_overlap_policy_while_the_last_run_waits(
    pg_store: PostgresStore,
    world: tuple[Schedules, TimerPoller, ManualClock, Seen],
    overlap: Overlap,
    outcomes: list[TickOutcome],
    running: int,
) -> None:
    schedules, poller, clock, _ = world
    await schedules.create("gated", Every(60, name="gate", overlap=overlap))
    for _ in range(3 if overlap is not Overlap.CANCEL_OTHER else 2):
        await fire_tick(poller, clock)
    ticks = list(reversed(await pg_store.schedule_ticks("gate")))
    assert [t.outcome for t in ticks][: len(outcomes)] == outcomes
    runs = await all_runs(pg_store, "gated")
    assert sum(not r.finished for r in runs) == running
    if overlap is Overlap.CANCEL_OTHER:
        assert sorted(r.status for r in runs) == sorted([RunStatus.CANCELLED, RunStatus.RUNNING])
        [cancelled] = [r for r in runs if r.status is RunStatus.CANCELLED]
        actors = {e.actor for e in await pg_store.history(cancelled.id) if e.kind == "operator_cancel"}
        assert actors == {"schedule:gate"}


async def test_buffer_one_starts_the_held_tick_once_the_running_run_finishes(
    pg_store: PostgresStore, world: tuple[Schedules, TimerPoller, ManualClock, Seen]
) -> None:
    schedules, poller, clock, _ = world
    await schedules.create("gated", Every(60, name="gate", overlap=Overlap.BUFFER_ONE))
    await fire_tick(poller, clock)  # starts run 1
    await fire_tick(poller, clock)  # held
    held = (await schedules.get("gate")).buffered
    assert held is not None
    [first] = await all_runs(pg_store, "gated")
    await schedules.firer.engine.apply(first.id, SignalReceived("go"))
    clock.advance(5)  # the buffer's recheck, before the next tick
    assert await poller.fire_due() == 1
    runs = await all_runs(pg_store, "gated")
    assert {r.idempotency_key for r in runs} == {
        f"gated:{tick_key('gate', first_tick)}" for first_tick in (held - 60, held)
    }
    assert (await schedules.get("gate")).buffered is None


async def test_pause_resume_trigger_and_backfill(
    pg_store: PostgresStore, world: tuple[Schedules, TimerPoller, ManualClock, Seen]
) -> None:
    schedules, poller, clock, _ = world
    start = clock.now()
    await schedules.create("gated", Every(60, name="gate", overlap=Overlap.ALLOW_ALL))
    await fire_tick(poller, clock)  # the tick at start + 60 fires
    await schedules.pause("gate")
    clock.advance(600)
    assert await poller.fire_due() == 0  # paused: no timer
    resumed = await schedules.resume("gate")
    assert resumed.next_tick == start + 720  # from now on; the paused ticks are not caught up
    triggered = await schedules.trigger("gate")
    assert triggered is not None
    assert [c.created for c in triggered.created] == [True]
    backfilled = await schedules.backfill("gate", start + 60, start + 180)
    assert backfilled is not None
    # The tick at +60 fired already: its run is found by its key, not started again.
    assert [c.created for c in backfilled.created] == [False, True, True]
    again = await schedules.backfill("gate", start + 60, start + 180)
    assert again is not None
    assert [c.created for c in again.created] == [False, False, False]
    assert len(await all_runs(pg_store, "gated")) == 4


async def test_code_schedules_are_reconciled_created_updated_never_duplicated(
    pg_store: PostgresStore, world: tuple[Schedules, TimerPoller, ManualClock, Seen]
) -> None:
    _, _, clock, _ = world

    def declared(schedule: Every) -> Schedules:
        app = App()
        app.register(
            Workflow("gated", start="gate", states=GATE.states, schedules=[schedule]),
        )
        return Schedules(app, Engine(app, pg_store, None, clock), pg_store, clock)

    first = declared(Every(60, name="code", input={"v": 1}))
    assert await first.reconcile() == {"code": Reconciled.CREATED}
    assert await first.reconcile() == {"code": Reconciled.UNCHANGED}
    await first.pause("code")
    changed = declared(Every(120, name="code", input={"v": 2}))
    assert await changed.reconcile() == {"code": Reconciled.UPDATED}
    [stored] = await pg_store.list_schedules()
    assert stored.schedule == Every(120, name="code", input={"v": 2})
    assert stored.paused  # a pause made at run time outlives a deploy
    await changed.delete("code")
    assert await changed.reconcile() == {"code": Reconciled.CREATED}  # the code declares it
