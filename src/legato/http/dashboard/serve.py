"""Running the dashboard: its live-update watcher and its HTTP server, in one task group."""

from __future__ import annotations

from functools import partial

import anyio
from anyio.abc import TaskStatus

from legato.config import HttpSettings
from legato.http.dashboard.app import dashboard_app
from legato.http.dashboard.live import Watcher
from legato.http.dashboard.service import Dashboard
from legato.http.server import serve_app


async def serve_dashboard(
    dashboard: Dashboard,
    settings: HttpSettings,
    *,
    interval: float = 1.0,
    task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; reports the bound (host, port)."""
    watcher = Watcher(dashboard.insights, interval)
    async with anyio.create_task_group() as group:
        group.start_soon(watcher.run, name="dashboard-watcher")
        app = dashboard_app(dashboard, watcher, settings)
        address = await group.start(
            partial(serve_app, app, settings, what="dashboard"), name="dashboard-http"
        )
        task_status.started(address)
