"""``legato worker`` and ``legato migrate``."""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import replace
from functools import partial
from typing import Any

import anyio
import click

from legato.backends import make_broker, make_store
from legato.cli.runner import require_app, run_async, settings_of, with_app
from legato.config import Settings
from legato.redact import redact
from legato.telemetry.setup import Telemetry
from legato.worker.runtime import Worker
from legato.worker.supervisor import CHILD_INDEX, SUPERVISOR_PID, exec_supervisor

log = logging.getLogger("legato.cli")

SUPERVISOR_CHECK = 0.5
"""Seconds between a child worker's checks that its supervisor still lives."""


@click.command()
@click.argument("app", required=False, metavar="[MODULE:ATTR]")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Steps run at once by this process.")
@click.option(
    "--prefetch",
    type=click.IntRange(min=1),
    help="Unacked deliveries per queue (default: concurrency).",
)
@click.option(
    "--waiting-room",
    type=click.IntRange(min=0),
    help="Deliveries per queue that may wait for a rate or concurrency limit (default: 4 x prefetch).",
)
@click.option("--grace", type=click.FloatRange(min=0), help="Seconds in-flight steps get on shutdown.")
@click.option("--no-migrate", is_flag=True, help="Do not apply pending migrations on start.")
@click.option(
    "--http-port",
    type=click.IntRange(min=0, max=65535),
    help="Serve the HTTP ingress, webhooks, /metrics, /healthz and /readyz on this port (or LEGATO_HTTP_PORT; 0 picks one).",
)
@click.option("--http-host", help="Address to bind (default 127.0.0.1; others need LEGATO_HTTP_TOKEN).")
@click.option(
    "--processes",
    "-p",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes to run under a supervisor that restarts them (one per core).",
)
@click.pass_context
def worker(
    ctx: click.Context,
    app: str | None,
    concurrency: int | None,
    prefetch: int | None,
    waiting_room: int | None,
    grace: float | None,
    no_migrate: bool,
    http_port: int | None,
    http_host: str | None,
    processes: int,
) -> None:
    """Run a worker for the app at MODULE:ATTR (or --app / LEGATO_APP).

    SIGTERM or Ctrl-C stops it gracefully: no new steps, in-flight steps get
    --grace seconds, the rest go back to the queue. A second signal stops at once.

    With --processes N, a supervisor runs N such workers, forwards the signals,
    restarts one that dies, and exits non-zero if they keep dying. Worker i
    serves HTTP on --http-port + i.
    """
    settings = with_app(settings_of(ctx), app)
    given: dict[str, Any] = {
        "concurrency": concurrency,
        "prefetch": prefetch,
        "waiting_room": waiting_room,
        "grace": grace,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    if no_migrate:
        overrides["migrate"] = False
    settings = replace(settings, worker=replace(settings.worker, **overrides))
    http: dict[str, Any] = {"port": http_port, "host": http_host}
    settings = replace(
        settings, http=replace(settings.http, **{k: v for k, v in http.items() if v is not None})
    )
    if settings.http.port is not None or settings.webhooks:
        # Only then: aiohttp is of no use to a worker that serves no HTTP.
        from legato.http.security import check_binding
        from legato.http.webhooks import webhook_sources

        if settings.http.port is not None:
            check_binding(settings.http)
        webhook_sources(settings.webhooks)  # a bad [webhooks.NAME] table stops the start, naming it
    definitions = require_app(settings)
    child = os.environ.get(CHILD_INDEX)
    if child is None and processes > 1:
        supervise_workers(ctx, settings, processes)
    if child is not None and settings.http.port:
        settings = replace(settings, http=replace(settings.http, port=settings.http.port + int(child)))
    if settings.limits:
        definitions = definitions.with_limits(settings.limits)
    broker = make_broker(settings)
    # The app's queues, for the telemetry's span attributes too (the Worker sets them as well).
    broker.topology = broker.topology.serving(definitions.name, definitions.events())
    telemetry = Telemetry.configure(
        metrics=settings.http.port is not None,
        topology=broker.topology,
        embedded_broker=settings.embedded_broker,
    )
    node = Worker(
        definitions,
        make_store(settings),
        broker,
        settings.worker,
        observer=telemetry.observer(),
        middleware=telemetry.middleware(),
    )
    try:
        run_async(lambda: serve(settings, node, telemetry))
    finally:
        telemetry.shutdown()


def supervise_workers(ctx: click.Context, settings: Settings, processes: int) -> None:
    """Become the supervisor of ``processes`` copies of this very command (it does not return)."""
    if settings.embedded_store or settings.embedded_broker:
        raise click.UsageError(
            "--processes needs a database and a broker server (LEGATO_DATABASE_URL and "
            "LEGATO_BROKER_URL): the embedded SQLite store and in-process broker belong to one process"
        )
    # The children run this command line again; CHILD_INDEX tells them they are children.
    command = [sys.executable, "-m", "legato", *sys.argv[1:]]
    root = ctx.find_root().params
    exec_supervisor(processes, command, str(root["log_level"]), str(root["log_format"]).lower())


async def serve(settings: Settings, node: Worker, telemetry: Telemetry | None = None) -> None:
    where = (
        "embedded SQLite + in-process broker"
        if settings.embedded_store and settings.embedded_broker
        else (f"{redact(settings.database_url or 'sqlite')} + {redact(settings.broker_url or 'memory')}")
    )
    log.info("legato worker on %s", where)
    async with anyio.create_task_group() as group:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                received = 0
                async for number in signals:
                    received += 1
                    if received == 1:
                        log.info(
                            "%s: stopping gracefully (send again to stop at once)",
                            signal.Signals(number).name,
                        )
                        node.stop()
                    else:
                        group.cancel_scope.cancel()

        group.start_soon(watch_signals, name="signals")
        supervisor = os.environ.get(SUPERVISOR_PID)
        if supervisor is not None:
            group.start_soon(watch_supervisor, node, int(supervisor), name="supervisor")
        if settings.http.port is not None:
            from legato.http.server import serve_app
            from legato.http.worker_app import worker_app

            app = worker_app(node, telemetry.metrics if telemetry else None, settings)
            await group.start(
                partial(serve_app, app, settings.http, what="ingress, metrics and probes"), name="http"
            )
        await node.run()
        group.cancel_scope.cancel()


async def watch_supervisor(node: Worker, supervisor: int) -> None:
    """Stop gracefully when the supervisor is gone (killed, say, by the OOM killer):
    a worker nobody supervises would run on unseen, and block a restart's drain."""
    while os.getppid() == supervisor:
        await anyio.sleep(SUPERVISOR_CHECK)
    log.warning("the supervisor (pid %d) is gone: stopping gracefully", supervisor)
    node.stop()


@click.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply the database migrations that are not applied yet."""
    settings = settings_of(ctx)

    async def go() -> list[str]:
        store = make_store(settings, pool_size=1)
        await store.open()
        try:
            return await store.migrate()
        finally:
            await store.close()

    applied = run_async(go)
    click.echo("applied: " + ", ".join(applied) if applied else "the schema is up to date")


COMMANDS = [worker, migrate]
