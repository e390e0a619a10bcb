"""``legato retention``: what retention would remove, and a pass on demand;
``legato export``: a day of a workflow's runs to JSON Lines (docs/retention.md)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path

import click
from rich.table import Table

from legato.backends import make_store
from legato.cli.render import console, plain, when
from legato.cli.runner import dump_json, require_app, run_async, settings_of
from legato.clock import SystemClock
from legato.config import Settings
from legato.errors import ConfigurationError
from legato.lifecycle.archive import Archive, export_day
from legato.lifecycle.retention import Retention, RetentionPolicy, RetentionReport
from legato.store.retention import RetentionStatus


@contextlib.asynccontextmanager
async def _retention(settings: Settings) -> AsyncIterator[Retention]:
    # The app's workflows carry their own periods: without them the default
    # would take runs that a workflow keeps longer.
    app = require_app(settings)
    policy = RetentionPolicy.of(app, settings.worker.retention_days, settings.worker.dedupe_days)
    if not policy.enabled:
        raise ConfigurationError(
            "no retention is set: give [worker] retention_days (LEGATO_RETENTION_DAYS) or a workflow's retention"
        )
    store = make_store(settings, pool_size=2)
    await store.open()
    try:
        if settings.embedded_store:
            await store.migrate()
        archive = settings.worker.archive_dir
        yield Retention(
            store,
            policy,
            SystemClock(),
            holder=f"cli:{socket.gethostname()}",
            batch=settings.worker.retention_batch,
            archive=Archive(archive) if archive else None,
        )
    finally:
        await store.close()


@click.group()
def retention() -> None:
    """Remove finished runs past their retention period, or see what would go."""


@retention.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """What a pass would remove now, and the oldest data kept."""
    settings = settings_of(ctx)

    async def go() -> RetentionStatus:
        async with _retention(settings) as pass_:
            return await pass_.status()

    found = run_async(go)
    if as_json:
        dump_json(asdict(found))
        return
    table = Table("workflow", "expired runs", title="Would be removed")
    for workflow, count in sorted(found.expired.items()):
        table.add_row(plain(workflow), plain(count))
    out = console()
    out.print(table)
    out.print(f"expired runs kept for an open dead letter: {found.kept_by_dead_letters}")
    out.print(f"resolved dead letters of no run past retention: {found.resolved_dead_letters}")
    out.print(f"retired idempotency keys: {found.retired_keys} ({found.expired_keys} past their window)")
    out.print(
        f"oldest run: {when(found.oldest_run)}  oldest finished: {when(found.oldest_finished)}  "
        f"oldest history: {when(found.oldest_history)}"
    )


@retention.command("run")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def run(ctx: click.Context, as_json: bool) -> None:
    """One pass now (waits for nobody: exits 1 if a worker's pass is running)."""
    settings = settings_of(ctx)

    async def go() -> RetentionReport | None:
        async with _retention(settings) as pass_:
            return await pass_.run()

    report = run_async(go)
    if report is None:
        raise click.ClickException("another process is running a retention pass; try again later")
    if as_json:
        dump_json(
            {
                **report.removed.by_table(),
                "seconds": report.seconds,
                "archived": [str(p) for p in report.archived],
            }
        )
        return
    removed = ", ".join(f"{rows} {table}" for table, rows in report.removed.by_table().items())
    click.echo(f"removed {removed} in {report.seconds:.2f}s")
    for path in report.archived:
        click.echo(f"archived to {path}")


@click.command("export")
@click.argument("workflow")
@click.option("--day", required=True, metavar="YYYY-MM-DD", help="Runs finished on this day (UTC).")
@click.option(
    "--to", "directory", type=click.Path(file_okay=False), help="Directory (default: [worker] archive_dir)."
)
@click.pass_context
def export(ctx: click.Context, workflow: str, day: str, directory: str | None) -> None:
    """Write the runs of WORKFLOW finished on a day to DIR/WORKFLOW/DAY.jsonl (nothing is removed)."""
    settings = settings_of(ctx)
    target = directory or settings.worker.archive_dir
    if target is None:
        raise click.UsageError("give --to DIR (or set [worker] archive_dir)")
    try:
        time.strptime(day, "%Y-%m-%d")
    except ValueError:
        raise click.BadParameter(f"{day!r} is not YYYY-MM-DD", param_hint="--day") from None

    async def go() -> tuple[Path, int]:
        store = make_store(settings, pool_size=2)
        await store.open()
        try:
            if settings.embedded_store:
                await store.migrate()
            return await export_day(store, Archive(target), workflow, day)
        finally:
            await store.close()

    path, count = run_async(go)
    click.echo(f"wrote {count} runs to {path}")


COMMANDS = [retention, export]
