"""Waiting for results: the fallback read when no notification comes."""

from __future__ import annotations

from pathlib import Path

import anyio

from legato import App, Approval, Client, RunStatus, Workflow
from legato.store.sqlite import SqliteStore


class TellsNothing(SqliteStore):
    """Claims to hear every process's changes, but hears only its own: like a
    Postgres listener that missed a notification."""

    watches_every_process = True


APP = App([Workflow("gate", start="gate", states={"gate": Approval("go")})])


async def test_a_waiter_that_misses_the_notification_reads_again_after_the_fallback(tmp_path: Path) -> None:
    waiting = TellsNothing(tmp_path / "legato.db")
    elsewhere = SqliteStore(tmp_path / "legato.db")
    for store in (waiting, elsewhere):
        await store.open()
        await store.migrate()
    try:
        run = await Client(elsewhere, None, APP).start("gate", {})
        waiter = Client(waiting, None, APP)
        result: list[RunStatus] = []

        async def wait() -> None:
            result.append((await waiter.wait(run.id, timeout=10, fallback=0.2)).status)

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            await Client(elsewhere, None, APP).cancel(run.id)  # another process: no notification here
        assert result == [RunStatus.CANCELLED]
    finally:
        await waiting.close()
        await elsewhere.close()
