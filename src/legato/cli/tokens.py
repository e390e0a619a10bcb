"""Completion tokens from the command line: ``complete`` and ``fail``.

A step whose handler returned ``CompleteLater`` waits for its token; these
settle it (docs/concepts.md, "Completion from outside").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import click

from legato.cli.operate import JSON_OPTION, show_run
from legato.cli.runner import client, parse_json_object, run_async, settings_of
from legato.client import Client
from legato.machine.run import Run
from legato.outside import EXTERNAL_ERROR


def _settle(ctx: click.Context, action: Callable[[Client], Awaitable[Run]], as_json: bool) -> None:
    settings = settings_of(ctx)

    async def go() -> Run:
        async with client(settings, app=True) as api:
            return await action(api)

    show_run(run_async(go), as_json)


@click.command()
@click.argument("token")
@click.option("--output", metavar="JSON", help="The step's output: a JSON object merged into the run's data.")
@JSON_OPTION
@click.pass_context
def complete(ctx: click.Context, token: str, output: str | None, as_json: bool) -> None:
    """Complete the step waiting for TOKEN (its handler returned CompleteLater),
    with --output as its result. A token is single-use."""
    payload = parse_json_object(output, "--output")
    _settle(ctx, lambda api: api.complete(token, payload or None), as_json)


@click.command()
@click.argument("token")
@click.option("--error", "message", required=True, help="What went wrong.")
@click.option(
    "--type",
    "type_",
    default=EXTERNAL_ERROR,
    show_default=True,
    help="The error's type (retry_on / non_retryable match it).",
)
@click.option("--no-retry", is_flag=True, help="Fail the step for good, skipping the retries left.")
@JSON_OPTION
@click.pass_context
def fail(ctx: click.Context, token: str, message: str, type_: str, no_retry: bool, as_json: bool) -> None:
    """Fail the step waiting for TOKEN; its retry policy decides what follows
    (a retry runs its handler again, which hands out a new token)."""
    _settle(ctx, lambda api: api.fail(token, message, type=type_, non_retryable=no_retry), as_json)


COMMANDS = [complete, fail]
