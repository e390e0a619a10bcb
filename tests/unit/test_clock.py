"""The clock is injected: the worker and the broker read time only through it."""

from __future__ import annotations

import ast
from pathlib import Path

import anyio
import pytest

from legato import App, StepContext, Succeed, Task, Workflow
from legato.broker.memory import MemoryBroker
from legato.clock import ManualClock
from legato.engine import Engine
from legato.machine.events import CancelRequested
from legato.store.sqlite import SqliteStore
from legato.worker.dispatch import Dispatcher
from legato.worker.eager import HINT_FRESH_FOR, Eager, LocalDelivery
from legato.worker.steps import StepRunner

SRC = Path(__file__).resolve().parents[2] / "src" / "legato"
CLOCKED = ("worker", "broker", "flow")
"""The packages that must ask the clock."""


def direct_time_reads(path: Path) -> list[str]:
    """Where ``path`` reads the time itself: the time module, ``datetime.now``,
    the event loop's clock or anyio's."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import) and any(alias.name == "time" for alias in node.names):
            found.append(f"line {node.lineno}: import time")
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            found.append(f"line {node.lineno}: from time import ...")
        elif isinstance(node, ast.Attribute) and (
            (node.attr in {"now", "utcnow", "today"} and ast.unparse(node.value) in {"datetime", "date"})
            or node.attr == "current_time"
            or (node.attr == "time" and "loop" in ast.unparse(node.value))
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize(
    "path", sorted(p for package in CLOCKED for p in (SRC / package).rglob("*.py")), ids=str
)
def test_nothing_in_the_worker_or_the_broker_reads_the_time_itself(path: Path) -> None:
    assert direct_time_reads(path) == []


def test_the_scan_finds_direct_reads(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import time\nfrom datetime import datetime\n"
        "a = time.monotonic()\nb = datetime.now()\nc = loop.time()\nd = anyio.current_time()\n"
    )
    assert len(direct_time_reads(sample)) == 4


def test_a_manual_clock_moves_wall_and_monotonic_time_together() -> None:
    clock = ManualClock(1000.0)
    before = clock.monotonic()
    clock.advance(2.5)
    assert clock.now() == 1002.5
    assert clock.monotonic() == before + 2.5


# -- a decision that depends on time, driven by a ManualClock -----------------------

RAN: list[str] = []


async def step(ctx: StepContext) -> None:
    RAN.append(ctx.run_id)


@pytest.mark.parametrize(
    ("waited", "runs"),
    [(HINT_FRESH_FOR - 0.1, True), (HINT_FRESH_FOR + 0.1, False)],
    ids=["fresh hint", "stale hint"],
)
async def test_a_local_step_that_waited_long_reads_its_run_again(
    sqlite_store: SqliteStore, waited: float, runs: bool
) -> None:
    """A fresh hint saves the read (and so misses a cancel made meanwhile, which the
    commit's version check then catches); an old one is read again, and the cancel
    is seen before the handler runs."""
    RAN.clear()
    clock = ManualClock()
    app = App([Workflow("one", start="a", states={"a": Task(step, next="done"), "done": Succeed()})])
    broker = MemoryBroker(clock=clock)
    engine = Engine(app, sqlite_store, broker, clock)
    dispatcher = Dispatcher(1)
    eager = Eager(dispatcher, sqlite_store, broker, clock, claim_for=5.0)
    run = (await engine.start("one", {}, local=eager)).run
    [delivery] = dispatcher.close()
    assert isinstance(delivery, LocalDelivery)
    await engine.apply(run.id, CancelRequested("ops", compensate=False))
    clock.advance(waited)
    runner = StepRunner(app, engine, broker, clock, anyio.CapacityLimiter(1), local=eager)
    await runner.handle(delivery)
    assert delivery.settled
    assert ([run.id] if runs else []) == RAN
