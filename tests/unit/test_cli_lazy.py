"""The command table of ``legato`` (cli/main.py loads a command's module only when it runs)."""

from __future__ import annotations

import subprocess
import sys

import click

from legato.cli import dashboard, demo, dlq, operate, retention, runs, schedule, tokens, worker
from legato.cli.main import COMMANDS, cli

MODULES = (worker, runs, operate, tokens, demo, dashboard, retention)


def test_the_table_names_every_command_of_every_module() -> None:
    defined = {c.name: c for module in MODULES for c in module.COMMANDS}
    defined |= {"dlq": dlq.dlq, "schedule": schedule.schedule}
    assert set(COMMANDS) == set(defined)
    context = click.Context(cli)
    for name, command in defined.items():
        assert cli.get_command(context, name) is command, name
    assert cli.list_commands(context) == sorted(defined)
    assert cli.get_command(context, "nonesuch") is None


def test_a_command_loads_neither_the_web_server_nor_the_telemetry_sdks() -> None:
    # In a fresh interpreter: this one has imported everything already.
    probe = (
        "import sys; from click.testing import CliRunner; from legato.cli.main import cli; "
        "CliRunner().invoke(cli, ['retry', '--help'], catch_exceptions=False); "
        "print(sorted(m for m in ('aiohttp', 'opentelemetry.sdk', 'prometheus_client') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_an_unknown_command_is_named() -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["retyr"])
    assert result.exit_code == 2
    assert "No such command 'retyr'" in result.output
