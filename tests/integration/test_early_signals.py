"""Signals sent before the run waits for them, with a real worker process."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from legato import Client, OperationRefused, RunStatus
from legato.app import load_app
from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.postgres import PostgresStore
from tests.conftest import worker_env
from tests.integration.harness import eventually, running, spawn_worker

APP = "tests.apps.inflight:app"


async def test_signals_sent_before_the_approval_is_reached_are_consumed_there_in_arrival_order(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    client = Client(pg_store, rabbit, load_app(APP), actor="test")
    log = tmp_path / "worker.log"
    worker = spawn_worker(APP, worker_env(pg_schema, namespace), log=log)
    try:
        gate = tmp_path / "gate"
        run = await client.start("two_approvals", {"gate": str(gate)})
        # The run is held in its first step: neither approval has been reached.
        await client.signal(run.id, "approve", {"by": "alice"})
        await client.signal(run.id, "approve", {"by": "bob"})
        held = await client.get(run.id)
        assert held.status is RunStatus.RUNNING
        assert held.current_states == ("prepare",)
        assert [s.data for s in held.signals] == [{"by": "alice"}, {"by": "bob"}]
        with pytest.raises(OperationRefused, match="is not waiting for signal 'approve'"):
            await client.signal(run.id, "approve", {"by": "carol"}, early="refuse")

        gate.touch()
        done = await client.wait(run.id, timeout=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert done.status is RunStatus.SUCCEEDED, log.read_text()
    assert done.signals == ()
    history = await client.history(run.id)
    buffered = [(e.actor, e.detail["data"]) for e in history if e.kind == "signal_buffered"]
    assert buffered == [("test", {"by": "alice"}), ("test", {"by": "bob"})]
    received = [(e.state, e.detail["data"]) for e in history if e.kind == "signal_received"]
    assert received == [("first", {"by": "alice"}), ("second", {"by": "bob"})]
    # Each approval consumed its signal as it was entered: the run never waited.
    assert not [e for e in history if e.kind == "awaiting_signal"]
    assert done.data["by"] == "bob"


async def test_signal_with_start_starts_the_run_once_and_delivers_each_signal(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    client = Client(pg_store, rabbit, load_app(APP), actor="test")
    gate = tmp_path / "gate"
    first = await client.signal_with_start(
        "two_approvals", "order-7", "approve", {"n": 1}, {"gate": str(gate)}
    )
    again = await client.signal_with_start(
        "two_approvals", "order-7", "approve", {"n": 2}, {"gate": "ignored"}
    )
    assert again.id == first.id
    assert [s.data for s in again.signals] == [{"n": 1}, {"n": 2}]
    log = tmp_path / "worker.log"
    worker = spawn_worker(APP, worker_env(pg_schema, namespace), log=log)
    try:
        gate.touch()
        done = await client.wait(first.id, timeout=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert done.status is RunStatus.SUCCEEDED, log.read_text()
    assert done.data["n"] == 2
    assert done.input == {"gate": str(gate)}


async def test_signal_messages_that_come_early_are_kept_or_refused_as_they_ask(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, tmp_path: Path
) -> None:
    app = load_app(APP)
    client = Client(pg_store, rabbit, app, actor="crm")
    gate = tmp_path / "gate"
    async with running(app, pg_store, rabbit):
        run = await client.start("two_approvals", {"gate": str(gate)})
        # One at a time: messages on the trigger queue may be handled side by side.
        await client.send_signal_message(run.id, "approve", {"n": 1})
        await eventually(lambda: _kept(pg_store, run.id, 1))
        await client.send_signal_message(run.id, "approve", {"n": 0}, early="refuse")
        [letter] = await eventually(pg_store.list_dead_letters)
        await client.send_signal_message(run.id, "approve", {"n": 2})
        await eventually(lambda: _kept(pg_store, run.id, 2))
        gate.touch()
        done = await client.result(run.id, timeout=30)
    assert "is not waiting for signal 'approve'" in letter.reason
    assert done.status is RunStatus.SUCCEEDED
    assert done.data["n"] == 2


async def _kept(store: PostgresStore, run_id: str, count: int) -> bool:
    run = await store.load_run(run_id)
    return run is not None and len(run.signals) == count
