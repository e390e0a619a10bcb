"""A delivery whose dead letter cannot be written backs off; it does not spin.

The store refuses the dead letter a few times (as Postgres refused a NUL in
text before bodies were kept as bytes): the delivery comes back at doubling
intervals, each time with one log line and no traceback, and is kept as a
dead letter, with its reason, as soon as the store takes it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from legato import App, StepContext, Task, Workflow
from legato.broker.base import Delivery
from legato.broker.memory import MemoryBroker
from legato.store.base import PoisonMessage
from legato.store.sqlite import SqliteStore
from legato.worker.poison import Unrecorded
from legato.worker.runtime import WorkerSettings
from tests.integration.harness import eventually, running


async def noop(ctx: StepContext) -> None:
    return None


APP = App([Workflow("w", start="a", triggers=("w.event",), states={"a": Task(noop)})])


class RefusingStore(SqliteStore):
    """A real store that refuses the first ``refusals`` dead letters of messages."""

    def __init__(self, path: Path, refusals: int) -> None:
        super().__init__(path)
        self.refusals = refusals
        self.attempts: list[float] = []

    async def record_poison(self, poison: PoisonMessage, at: float) -> int:
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self.refusals:
            raise RuntimeError("invalid byte sequence for encoding UTF8: 0x00\nDETAIL: a second line")
        return await super().record_poison(poison, at)


def test_the_pause_doubles_up_to_a_bound() -> None:
    delivery = Delivery("q", b"x", "k", None, {}, None, False, _nothing, _nothing)
    unrecorded = Unrecorded(first=1.0, most=8.0)
    assert not unrecorded.failing(delivery)
    assert [unrecorded.failed(delivery) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert unrecorded.failing(delivery)
    unrecorded.recorded(delivery)
    assert not unrecorded.failing(delivery)


async def _nothing() -> None:
    return None


async def test_an_unrecordable_delivery_backs_off_then_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RefusingStore(tmp_path / "legato.db", refusals=5)
    broker = MemoryBroker()
    await store.open()
    await store.migrate()
    await broker.connect()
    caplog.set_level(logging.INFO, logger="legato")
    try:
        settings = WorkerSettings(concurrency=2, retry_pause=0.05, timer_poll_interval=0.05)
        async with running(APP, store, broker, settings):
            await broker.publish_event("w.event", b'{"a": "x\x00y"}', message_id="nul")
            [letter] = await eventually(store.list_dead_letters, timeout=30)
    finally:
        await broker.close()
        await store.close()
    # One try per delivery, the pause doubling from retry_pause: 0.05, 0.1, 0.2, 0.4, 0.8 s.
    assert len(store.attempts) == 6
    gaps = [later - earlier for earlier, later in zip(store.attempts, store.attempts[1:], strict=False)]
    for gap, least in zip(gaps, (0.05, 0.1, 0.2, 0.4, 0.8), strict=True):
        assert gap >= least * 0.9, gaps
    assert letter.body == b'{"a": "x\x00y"}'
    assert letter.reason.startswith("event 'w.event': body is not valid JSON")
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]
    assert len(caplog.records) <= 3 * len(store.attempts)
    assert all("\n" not in r.getMessage() for r in caplog.records)
