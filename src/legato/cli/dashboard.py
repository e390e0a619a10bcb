"""``legato dashboard``: the web UI, against Postgres or the embedded store."""

from __future__ import annotations

import os
import secrets
import signal
from dataclasses import replace
from pathlib import Path

import anyio
import click

from legato.backends import make_broker, make_store
from legato.cli.runner import require_app, run_async, settings_of
from legato.config import Settings
from legato.http.dashboard.serve import serve_dashboard
from legato.http.dashboard.service import Dashboard
from legato.http.security import check_binding, credentials, is_loopback
from legato.store.insights import insights_for
from legato.telemetry.setup import Telemetry

DEFAULT_PORT = 8321
TOKEN_FILE = "dashboard-token"
"""Where a made-up token goes, beside the embedded store (``.legato/`` by default)."""


@click.command()
@click.option("--host", help="Address to bind (default 127.0.0.1; any other needs LEGATO_HTTP_TOKEN).")
@click.option("--port", type=click.IntRange(min=0, max=65535), help=f"Port (default {DEFAULT_PORT}).")
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between checks for changes (live updates).",
)
@click.pass_context
def dashboard(ctx: click.Context, host: str | None, port: int | None, refresh: float) -> None:
    """Serve the dashboard: runs, steps, business figures, dead letters, operator actions.

    Give the app (--app / LEGATO_APP) to draw workflow graphs and act on runs.
    On 127.0.0.1 without a token, one for actions is made up and written to a
    file readable only by you (its path is printed, never the token); bound
    anywhere else, LEGATO_HTTP_TOKEN (or named tokens, LEGATO_HTTP_TOKENS) of at
    least 16 characters is required and every call must send it.
    """
    settings = settings_of(ctx)
    http = replace(
        settings.http,
        host=host or settings.http.host,
        port=port if port is not None else (settings.http.port or DEFAULT_PORT),
    )
    check_binding(http)
    token_file = None
    if not credentials(http) and is_loopback(http.host):
        token = secrets.token_urlsafe(24)
        token_file = write_token(Path(settings.embedded_path).parent / TOKEN_FILE, token)
        http = replace(http, token=token)
    settings = replace(settings, http=http)
    run_async(lambda: _serve(settings, token_file))


def write_token(path: Path, token: str) -> Path:
    """Write a made-up token where only this user can read it; return its absolute path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(descriptor, 0o600)  # an older file keeps its mode through O_CREAT
        file.write(token + "\n")
    return path.resolve()


async def _serve(settings: Settings, token_file: Path | None) -> None:
    definitions = require_app(settings) if settings.app else None
    store = make_store(settings, pool_size=4)
    broker = None if settings.embedded_broker else make_broker(settings)
    telemetry = Telemetry.configure(metrics=False, embedded_broker=settings.embedded_broker)
    await store.open()
    insights = insights_for(store)
    try:
        if settings.embedded_store:
            await store.migrate()
        await insights.open()
        if broker is not None:
            await broker.connect()
        board = Dashboard(store, insights, definitions, broker, telemetry.observer())
        async with anyio.create_task_group() as group:
            host, port = await group.start(serve_dashboard, board, settings.http, name="dashboard")
            shown = f"[{host}]" if ":" in host else host
            click.echo(f"legato dashboard on http://{shown}:{port}/", err=True)
            if token_file is not None:
                click.echo(f"actions need the token in {token_file} (readable only by you)", err=True)
            if definitions is None:
                click.echo("no app given (--app / LEGATO_APP): graphs and actions are off", err=True)
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    break
            group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if broker is not None:
                await broker.close()
            await insights.close()
            await store.close()
            await anyio.to_thread.run_sync(telemetry.shutdown)


COMMANDS = [dashboard]
