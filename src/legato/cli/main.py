"""``legato``: the command line."""

from __future__ import annotations

import os
from typing import Any

import click

from legato.cli.runner import CliState, first_legato_error
from legato.config import load_settings
from legato.errors import LegatoError
from legato.logs import LogFormat, configure_logging
from legato.printable import printable
from legato.redact import redact_logging


class LegatoGroup(click.Group):
    """Turns legato's own errors into one line and an exit code, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LegatoError as exc:
            raise click.ClickException(printable(exc)) from None
        except BaseExceptionGroup as group:
            found = first_legato_error(group)
            if found is None:
                raise
            raise click.ClickException(printable(found)) from None


@click.group(cls=LegatoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML config file (default: $LEGATO_CONFIG or ./legato.toml).",
)
@click.option(
    "--app",
    "app",
    metavar="MODULE:ATTR",
    help="Where the workflow definitions live (or LEGATO_APP).",
)
@click.option(
    "--log-level",
    default=lambda: os.environ.get("LEGATO_LOG_LEVEL", "info"),
    show_default="info",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
@click.option(
    "--log-format",
    default=lambda: os.environ.get("LEGATO_LOG_FORMAT", "text"),
    show_default="text",
    type=click.Choice([f.value for f in LogFormat], case_sensitive=False),
    help="json: one JSON object per line, with structured fields, for log shippers (or LEGATO_LOG_FORMAT).",
)
@click.version_option(package_name="legato")
@click.pass_context
def cli(
    ctx: click.Context, config_file: str | None, app: str | None, log_level: str, log_format: str
) -> None:
    """legato: event-driven workflows on RabbitMQ and Postgres.

    With no LEGATO_DATABASE_URL / LEGATO_BROKER_URL it runs on the embedded
    default (SQLite in .legato/ and an in-process broker).
    """
    configure_logging(log_level, log_format.lower())
    redact_logging()
    try:
        settings = load_settings(config_file)
    except LegatoError as exc:
        raise click.ClickException(str(exc)) from None
    if app:
        from dataclasses import replace

        settings = replace(settings, app=app)
    ctx.obj = CliState(settings)


def _register() -> None:
    from legato.cli import dashboard, demo, dlq, operate, retention, runs, schedule, tokens, worker

    for module in (worker, runs, operate, tokens, demo, dashboard, retention):
        for command in module.COMMANDS:
            cli.add_command(command)
    cli.add_command(dlq.dlq)
    cli.add_command(schedule.schedule)


_register()


def main() -> None:
    cli(prog_name="legato")
