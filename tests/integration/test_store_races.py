"""Races between transactions on one run, on the real Postgres."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import pytest

from legato import App, Approval, Fail, RunStatus, Succeed, Workflow
from legato.engine import Engine
from legato.machine.commands import Decision, Rejection
from legato.machine.events import SignalReceived, TimerFired
from legato.machine.run import Run
from legato.store.base import ConsumeTimer, Guard, GuardFailed
from legato.store.postgres import PostgresStore
from tests.conftest import PG_DSN

if TYPE_CHECKING:
    from legato.store.postgres.rows import Conn

APP = App(
    [
        Workflow(
            "gate",
            start="review",
            states={
                "review": Approval("approve", next="done", timeout=0.05, on_timeout="late"),
                "done": Succeed(),
                "late": Fail("NotApproved"),
            },
        )
    ]
)


class SlowGuards(PostgresStore):
    """Holds the firing transaction open after its guard, as a descheduled worker would."""

    async def _take_guard(self, conn: Conn, guard: Guard, run: Run) -> GuardFailed | None:
        failure = await super()._take_guard(conn, guard, run)
        await anyio.sleep(0.3)
        return failure


@pytest.fixture
async def slow_store(pg_schema: str) -> SlowGuards:
    store = SlowGuards(PG_DSN, pg_schema, min_size=2, max_size=4)
    await store.open()
    await store.migrate()
    return store


async def test_a_timer_firing_and_a_signal_cancelling_it_do_not_deadlock(slow_store: SlowGuards) -> None:
    engine = Engine(APP, slow_store, None)
    try:
        run = (await engine.start("gate", {})).run
        with anyio.fail_after(10):
            while not (due := await slow_store.claim_timers(time.time(), 30, 10)):
                await anyio.sleep(0.02)
        [timer] = due
        outcomes: dict[str, Decision | Rejection] = {}

        async def fire() -> None:
            event = TimerFired(timer.key, timer.purpose, timer.seq, timer.attempt)
            outcomes["timer"] = await engine.apply(run.id, event, guard=ConsumeTimer(timer.id))

        async def signal() -> None:
            await anyio.sleep(0.1)  # while the firing transaction holds its locks
            outcomes["signal"] = await engine.apply(run.id, SignalReceived("approve", {}, "ops"))

        async with anyio.create_task_group() as group:
            group.start_soon(fire)
            group.start_soon(signal)
        # One of them won; the other saw the run move on and was refused. No deadlock.
        assert isinstance(outcomes["timer"], Decision)
        assert isinstance(outcomes["signal"], Rejection)
        final = await slow_store.load_run(run.id)
        assert final is not None
        assert final.status is RunStatus.FAILED
        assert await slow_store.next_timer_at() is None
    finally:
        await slow_store.close()


async def test_a_value_the_database_refuses_fails_only_its_own_transition(pg_store: PostgresStore) -> None:
    from legato import StepContext, Task
    from legato.machine.events import StepSucceeded

    async def noop(ctx: StepContext) -> None:
        return None

    engine = Engine(App([Workflow("one", start="a", states={"a": Task(noop)})]), pg_store, None)
    runs = [(await engine.start("one", {})).run for _ in range(5)]
    # Bypass the edge checks: as if a bug let a NUL through to the group commit.
    outputs = [{"note": "a\x00b"} if i == 1 else {"ok": i} for i in range(5)]
    results: list[object] = [None] * 5

    async def finish(i: int) -> None:
        try:
            results[i] = await engine.apply(runs[i], StepSucceeded(1, 1, outputs[i]))
        except Exception as exc:
            results[i] = exc

    async with anyio.create_task_group() as group:
        for i in range(5):
            group.start_soon(finish, i)
    assert isinstance(results[1], Exception)
    assert all(isinstance(results[i], Decision) for i in (0, 2, 3, 4)), results
    for i in (0, 2, 3, 4):
        loaded = await pg_store.load_run(runs[i].id)
        assert loaded is not None
        assert loaded.status is RunStatus.SUCCEEDED
