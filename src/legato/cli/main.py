"""``legato``: the command line."""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from legato.cli.runner import CliState, first_legato_error
from legato.config import load_settings
from legato.errors import LegatoError
from legato.logs import LogFormat, configure_logging
from legato.printable import printable
from legato.redact import redact_logging

COMMANDS: dict[str, str] = {
    "worker": "legato.cli.worker:worker",
    "migrate": "legato.cli.worker:migrate",
    "start": "legato.cli.runs:start",
    "runs": "legato.cli.runs:list_runs",
    "show": "legato.cli.runs:show",
    "publish": "legato.cli.runs:publish",
    "graph": "legato.cli.runs:graph",
    "signal": "legato.cli.operate:signal",
    "signal-with-start": "legato.cli.operate:signal_with_start",
    "retry": "legato.cli.operate:retry",
    "skip": "legato.cli.operate:skip",
    "cancel": "legato.cli.operate:cancel",
    "pause": "legato.cli.operate:pause",
    "resume": "legato.cli.operate:resume",
    "complete": "legato.cli.tokens:complete",
    "fail": "legato.cli.tokens:fail",
    "demo": "legato.cli.demo:demo",
    "dashboard": "legato.cli.dashboard:dashboard",
    "retention": "legato.cli.retention:retention",
    "export": "legato.cli.retention:export",
    "dlq": "legato.cli.dlq:dlq",
    "schedule": "legato.cli.schedule:schedule",
}
"""Every command, by name, and where it is defined. A command's module is imported
only when that command runs: ``legato retry`` has no use for the dashboard's web
server or the OpenTelemetry SDK, and a CLI call starts in a fraction of the time
(tests/unit/test_cli_lazy.py checks the table against the modules' ``COMMANDS``)."""


def _load(name: str) -> click.Command:
    module, attr = COMMANDS[name].split(":")
    command = getattr(importlib.import_module(module), attr)
    assert isinstance(command, click.Command), (name, command)
    assert command.name == name, (name, command.name)
    return command


class LegatoGroup(click.Group):
    """Turns legato's own errors into one line and an exit code, not a traceback;
    loads a command's module when that command runs."""

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

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        return _load(cmd_name)


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


def main() -> None:
    cli(prog_name="legato")
