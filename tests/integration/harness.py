"""Helpers for tests that run real workers."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio

from legato.app import App
from legato.broker.base import Broker
from legato.machine.run import TERMINAL_STATUSES, Run
from legato.store.base import RunQuery
from legato.store.ports import Store
from legato.worker.runtime import Worker, WorkerSettings


@contextlib.asynccontextmanager
async def running(
    app: App,
    store: Store,
    broker: Broker,
    settings: WorkerSettings | None = None,
    before: Callable[[Worker], None] | None = None,
    **kwargs: Any,
) -> AsyncIterator[Worker]:
    """An in-process worker, stopped gracefully on exit; ``before`` sees it before it starts."""
    worker = Worker(
        app, store, broker, settings or WorkerSettings(concurrency=16, timer_poll_interval=0.05), **kwargs
    )
    if before is not None:
        before(worker)
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        with anyio.fail_after(10):
            await worker.started.wait()
        yield worker
        worker.stop()


async def eventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    with anyio.fail_after(timeout):
        while True:
            value = check()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return value
            await anyio.sleep(interval)


async def all_runs(store: Store, workflow: str | None = None) -> list[Run]:
    return await store.list_runs(RunQuery(workflow=workflow, limit=100_000))


async def wait_finished(store: Store, count: int, timeout: float = 60.0) -> list[Run]:
    async def done() -> list[Run] | None:
        runs = await all_runs(store)
        if len(runs) >= count and all(r.status in TERMINAL_STATUSES for r in runs):
            return runs
        return None

    result: list[Run] = await eventually(done, timeout, interval=0.2)
    return result


def spawn_worker(
    app: str, env: dict[str, str], *args: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """A worker process; its output goes to ``log`` (a pipe nobody reads would block it)."""
    output = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "legato", "worker", app, *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    finally:
        if log is not None:
            output.close()  # type: ignore[union-attr]


async def finished(store: Store, run_id: str, timeout: float = 30.0) -> Run:
    """Wait for a run to finish; on timeout, fail with what its history says.

    A bare TimeoutError says nothing about why a run is stuck; its status and
    history do (was the task dispatched, rejected as stale, never picked up?).
    """
    try:
        run: Run = await eventually(lambda: _ended(store, run_id), timeout, interval=0.05)
    except TimeoutError:
        now = await store.load_run(run_id)
        lines = [
            f"  v{e.version} {e.kind} state={e.state} attempt={e.attempt} actor={e.actor} {dict(e.detail)}"
            for e in await store.history(run_id)
        ]
        status = now.status.value if now else "missing"
        raise AssertionError(
            f"run {run_id} did not finish in {timeout}s: it is {status} (version "
            f"{now.version if now else '-'}, tokens {now.tokens if now else '-'}); history:\n"
            + "\n".join(lines)
        ) from None
    return run


async def _ended(store: Store, run_id: str) -> Run | None:
    run = await store.load_run(run_id)
    return run if run is not None and run.status in TERMINAL_STATUSES else None
