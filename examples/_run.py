"""Runs an example's app in-process on the embedded default (SQLite + in-process broker)."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio

from legato import App, Client
from legato.broker.memory import MemoryBroker
from legato.store.sqlite import SqliteStore
from legato.worker.runtime import Worker, WorkerSettings

T = TypeVar("T")


async def with_worker(app: App, scenario: Callable[[Client], Awaitable[T]], path: Path | None = None) -> T:
    """Start a worker for ``app``, run ``scenario`` with a client, stop the worker."""
    with tempfile.TemporaryDirectory() as scratch:
        store = SqliteStore(path or Path(scratch) / "example.db")
        broker = MemoryBroker()
        worker = Worker(app, store, broker, WorkerSettings(concurrency=8, timer_poll_interval=0.05))
        await store.open()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(worker.run)
                await worker.started.wait()
                try:
                    result = await scenario(Client(store, broker, app, actor="example"))
                finally:
                    worker.stop()
        finally:
            await store.close()
    return result
