"""Operator actions: ``signal``, ``signal-with-start``, ``retry``, ``skip``, ``cancel``,
``pause``, ``resume``.

RUN_ID is a run's id or an unambiguous start of it (``3f2a1b4c``). With
``--json`` each prints one JSON object on stdout: the run after the action,
or ``{"error": ...}`` when it was refused (exit code 1 either way it fails).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import click

from legato.cli.render import echo
from legato.cli.runner import (
    client,
    dump_json,
    first_legato_error,
    parse_json_object,
    run_async,
    settings_of,
)
from legato.client import Client
from legato.config import Settings
from legato.errors import LegatoError
from legato.machine.run import Run
from legato.machine.signals import EarlySignal
from legato.views import run_json

JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object: the run after the action, or the error."
)


def answer_json(go: Callable[[], Any]) -> Any:
    """Run ``go``; a legato error is printed as ``{"error": ...}`` on stdout and
    on stderr as one line, with exit code 1 (for scripts that read either)."""
    try:
        return go()
    except LegatoError as exc:
        found: LegatoError | None = exc
    except BaseExceptionGroup as group:
        found = first_legato_error(group)
        if found is None:
            raise
    dump_json({"error": str(found)})
    raise click.ClickException(str(found))


def _act(settings: Settings, action: Callable[[Client], Awaitable[Run]], as_json: bool = False) -> None:
    async def go() -> Run:
        async with client(settings, app=True) as api:
            return await action(api)

    if as_json:
        show_run(answer_json(lambda: run_async(go)), as_json)
        return
    show_run(run_async(go), as_json)


def show_run(run: Run, as_json: bool) -> None:
    """What an action made of the run: one line, or (``--json``) the run as JSON."""
    if as_json:
        dump_json(run_json(run))
        return
    states = ", ".join(run.current_states) or "-"
    echo(f"run {run.id}: {run.status.value} (at {states}, version {run.version})")


@click.command()
@click.argument("run_id")
@click.argument("name")
@click.option("--data", metavar="JSON", help="Data to merge into the run: a JSON object.")
@click.option(
    "--refuse-early",
    is_flag=True,
    help="Refuse the signal if the run is not waiting for it now, instead of keeping it until it is.",
)
@JSON_OPTION
@click.pass_context
def signal(
    ctx: click.Context, run_id: str, name: str, data: str | None, refuse_early: bool, as_json: bool
) -> None:
    """Send the signal NAME to a run's approval state: consumed at once if the
    run waits for it, else kept until the run gets there (unless --refuse-early)."""
    payload = parse_json_object(data, "--data")
    early = EarlySignal.REFUSE if refuse_early else EarlySignal.BUFFER
    _act(settings_of(ctx), lambda api: api.signal(run_id, name, payload, early=early), as_json)


@click.command("signal-with-start")
@click.argument("workflow")
@click.argument("key")
@click.argument("name")
@click.option("--data", metavar="JSON", help="The signal's data: a JSON object.")
@click.option("--input", "input_", metavar="JSON", help="The input of the run, if it is started.")
@JSON_OPTION
@click.pass_context
def signal_with_start(
    ctx: click.Context,
    workflow: str,
    key: str,
    name: str,
    data: str | None,
    input_: str | None,
    as_json: bool,
) -> None:
    """Start a run of WORKFLOW unless KEY has one, then send it the signal NAME."""
    payload = parse_json_object(data, "--data")
    start_input = parse_json_object(input_, "--input")
    _act(
        settings_of(ctx),
        lambda api: api.signal_with_start(workflow, key, name, payload, start_input),
        as_json,
    )


@click.command()
@click.argument("run_id")
@click.option("--state", help="The step to retry, when several are stuck.")
@click.option("--data", metavar="JSON", help="Data to merge into the run before retrying (fix the input).")
@JSON_OPTION
@click.pass_context
def retry(ctx: click.Context, run_id: str, state: str | None, data: str | None, as_json: bool) -> None:
    """Retry the suspended or failed step of a run with a fresh attempt budget."""
    payload = parse_json_object(data, "--data")
    _act(settings_of(ctx), lambda api: api.retry(run_id, state, payload or None), as_json)


@click.command()
@click.argument("run_id")
@click.option("--state", help="The step to skip, when several are stuck.")
@click.option("--output", metavar="JSON", help="The output to record for the skipped step.")
@JSON_OPTION
@click.pass_context
def skip(ctx: click.Context, run_id: str, state: str | None, output: str | None, as_json: bool) -> None:
    """Mark the suspended or failed step of a run done, and move on."""
    payload = parse_json_object(output, "--output")
    _act(settings_of(ctx), lambda api: api.skip(run_id, state, payload or None), as_json)


@click.command()
@click.argument("run_id")
@click.option("--no-compensate", is_flag=True, help="Stop at once; do not undo completed steps.")
@click.option("--reason", default="", help="Why, for the history.")
@JSON_OPTION
@click.pass_context
def cancel(ctx: click.Context, run_id: str, no_compensate: bool, reason: str, as_json: bool) -> None:
    """Cancel a run; by default the compensations of completed steps run first."""
    _act(settings_of(ctx), lambda api: api.cancel(run_id, not no_compensate, reason), as_json)


@click.command()
@click.argument("run_id")
@click.option("--reason", default="", help="Why, for the history.")
@JSON_OPTION
@click.pass_context
def pause(ctx: click.Context, run_id: str, reason: str, as_json: bool) -> None:
    """Pause a run: steps running now finish, no new step starts until `legato resume`.

    The run's status turns `paused`. (This is what the issue tracker calls
    suspending a run; legato's `suspended` status means a step failed for good
    and waits for a person: docs/concepts.md.)
    """
    _act(settings_of(ctx), lambda api: api.pause(run_id, reason), as_json)


@click.command()
@click.argument("run_id")
@JSON_OPTION
@click.pass_context
def resume(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Resume a paused run: the steps held back while it was paused start now."""
    _act(settings_of(ctx), lambda api: api.resume(run_id), as_json)


COMMANDS = [signal, signal_with_start, retry, skip, cancel, pause, resume]
