"""Results of one run that arrive together take turns in the engine instead of racing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from legato import App, Branch, Map, RunStatus, Task, Workflow
from legato.engine import Engine
from legato.machine.events import StepSucceeded
from legato.observe import ConflictInput, Observer
from legato.store.sqlite import SqliteStore


def h(ctx: Any) -> None:
    return None


WIDE = Workflow(
    "wide", start="each", states={"each": Map("xs", Branch("x", {"x": Task(h)}), max_concurrency=20)}
)


class Conflicts(Observer):
    def __init__(self) -> None:
        self.count = 0

    def conflict(self, conflict: ConflictInput) -> None:
        self.count += 1


async def test_twenty_items_finishing_at_once_cause_no_conflict_and_join_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "turns.db")
    await store.open()
    try:
        await store.migrate()
        conflicts = Conflicts()
        engine = Engine(App([WIDE]), store, None, observer=conflicts)
        started = await engine.start("wide", {"xs": list(range(20))})
        run = started.run
        items = [t for t in run.tokens if t.state == "x"]
        assert len(items) == 20
        async with anyio.create_task_group() as group:
            for token in items:
                # Each with the run as it was when its step started, as a worker has it.
                group.start_soon(engine.apply, run, StepSucceeded(token.seq, 1, {"n": token.branch}))
        final = await store.load_run(run.id)
        assert final is not None
        assert final.status is RunStatus.SUCCEEDED
        assert final.data["results"] == [{"n": i} for i in range(20)]
        assert final.version == run.version + 20
        assert conflicts.count == 0
        assert len(engine._turns) == 0  # nothing kept once nobody waits
    finally:
        await store.close()
