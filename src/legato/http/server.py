"""Running an aiohttp application inside legato's task groups."""

from __future__ import annotations

import logging

import anyio
from aiohttp import web
from anyio.abc import TaskStatus

from legato.config import HttpSettings
from legato.http.security import check_binding

log = logging.getLogger("legato.http")

SHUTDOWN_TIMEOUT = 1.0
"""Seconds requests in progress get when the server stops."""


async def serve_app(
    app: web.Application,
    settings: HttpSettings,
    *,
    what: str = "HTTP",
    task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen until cancelled; reports the bound ``(host, port)`` when started
    (port 0 picks a free one)."""
    check_binding(settings)
    # Open live-update streams would hold a graceful shutdown for a minute otherwise.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port or 0, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            from legato.errors import ConfigurationError

            raise ConfigurationError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
            ) from exc
        host, port = runner.addresses[0][:2]
        log.info("%s on http://%s:%d", what, host if ":" not in host else f"[{host}]", port)
        task_status.started((host, port))
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
