"""``legato start``, ``runs``, ``show``, ``publish`` and ``graph``."""

from __future__ import annotations

import time

import click

from legato.cli.exits import ExitCode, for_finished
from legato.cli.render import console, echo, history_table, plain, runs_table
from legato.cli.runner import (
    client,
    dump_json,
    parse_json_object,
    parse_when,
    parse_where,
    require_app,
    run_async,
    say_if_truncated,
    settings_of,
)
from legato.machine.definition import Priority
from legato.machine.map import progress as map_progress
from legato.machine.map import progress_line
from legato.machine.run import Run, RunStatus
from legato.store.base import HistoryEntry
from legato.views import history_json, run_json

PRIORITIES = click.Choice([p.name.lower() for p in Priority], case_sensitive=False)


@click.command()
@click.argument("workflow")
@click.option("--input", "input_", metavar="JSON", help="The run's input: a JSON object, or @file.json.")
@click.option("--key", help="Idempotency key: starting again with the same key returns the first run.")
@click.option("--priority", type=PRIORITIES, help="Priority of the run and its steps.")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    help="Wait up to this many seconds for the run to finish.",
)
@click.pass_context
def start(
    ctx: click.Context,
    workflow: str,
    input_: str | None,
    key: str | None,
    priority: str | None,
    wait_seconds: float | None,
) -> None:
    """Start a run of WORKFLOW and print its id.

    With --wait, the exit code says how the run ended: 0 succeeded, 3 still
    running when the wait ran out, 4 failed, 5 compensated, 6 cancelled.
    """
    settings = settings_of(ctx)
    payload = parse_json_object(input_, "--input")

    async def go() -> tuple[Run, bool]:
        async with client(settings, app=True) as api:
            run = await api.start(workflow, payload, key=key, priority=priority)
            if wait_seconds is None:
                return run, True
            try:
                return await api.wait(run.id, wait_seconds), True
            except TimeoutError:
                return await api.get(run.id), False

    run, finished = run_async(go)
    echo(run.id)
    if wait_seconds is None:
        return
    if not finished:
        click.echo(
            f"run {run.id} is still {run.status.value} after {wait_seconds:g} s; it goes on"
            f" (follow it with `legato show {run.id}`)",
            err=True,
        )
        ctx.exit(ExitCode.STILL_RUNNING)
    error = f": {run.error.type}: {run.error.message}" if run.error else ""
    echo(f"{run.status.value}{error}", err=True)
    ctx.exit(for_finished(run.status))


@click.command("runs")
@click.option("--status", type=click.Choice([s.value for s in RunStatus]), help="Only runs with this status.")
@click.option("--workflow", help="Only runs of this workflow.")
@click.option("--parent", metavar="RUN", help="Only the child runs that run RUN started, oldest first.")
@click.option(
    "--where",
    "where_",
    metavar="PATH=VALUE",
    multiple=True,
    help="Only runs whose search attribute PATH (declared by the workflow) is VALUE; repeatable.",
)
@click.option(
    "--key", help="Only the run with this idempotency key, as stored (a start key is WORKFLOW:KEY)."
)
@click.option("--since", metavar="TIME", help="Only runs created at or after TIME: ISO time or ago (2h, 7d).")
@click.option("--until", metavar="TIME", help="Only runs created before TIME: ISO time or ago (2h, 7d).")
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_runs(
    ctx: click.Context,
    status: str | None,
    workflow: str | None,
    parent: str | None,
    where_: tuple[str, ...],
    key: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List runs, newest first (with --parent, a run's children, oldest first)."""
    settings = settings_of(ctx)
    if parent is not None and (where_ or key or since or until):
        raise click.UsageError(
            "--parent lists a run's children: it takes no --where, --key, --since or --until"
        )
    now = time.time()
    where = parse_where(where_)
    since_at = parse_when(since, "--since", now) if since is not None else None
    until_at = parse_when(until, "--until", now) if until is not None else None

    async def go() -> tuple[list[Run], int]:
        async with client(settings, broker=False) as api:
            if parent is not None:
                children = await api.children(parent)
                wanted = [
                    c
                    for c in children
                    if (status is None or c.status.value == status)
                    and (workflow is None or c.workflow == workflow)
                ]
                return wanted[:limit], len(wanted)
            found = await api.runs(
                status, workflow, limit, where=where, key=key, since=since_at, until=until_at
            )
            total = len(found)
            if total >= limit:
                total = await api.count_runs(
                    status, workflow, where=where, key=key, since=since_at, until=until_at
                )
            return found, total

    found, total = run_async(go)
    if as_json:
        dump_json([run_json(r) for r in found])
    else:
        console().print(runs_table(found))
    say_if_truncated(len(found), total)


@click.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run and its history. RUN_ID may be an unambiguous start of the id (3f2a1b4c)."""
    settings = settings_of(ctx)

    async def go() -> tuple[Run, list[HistoryEntry], list[Run]]:
        async with client(settings, broker=False) as api:
            run = await api.get(run_id)
            return run, await api.history(run.id), await api.children(run.id)

    run, history, children = run_async(go)
    if as_json:
        dump_json(
            {
                "run": run_json(run),
                "history": [history_json(h) for h in history],
                "children": [run_json(c) for c in children],
            }
        )
        return
    out = console()
    out.print(runs_table([run], title="Run"))
    if run.parent is not None:
        out.print(
            plain(f"parent: {run.parent.run_id} (step #{run.parent.seq}, attempt {run.parent.attempt})")
        )
    if run.error:
        out.print(plain("error: ", "red") + plain(f"{run.error.type}: {run.error.message}"))
    for entry in map_progress(run):
        out.print(plain(progress_line(entry)))
    if children:
        out.print(runs_table(children, title="Children"))
    out.print(history_table(run, history))


@click.command()
@click.argument("event")
@click.option("--body", metavar="JSON", help="The event body: a JSON object, or @file.json.")
@click.option("--message-id", help="The AMQP message_id: the event's idempotency key.")
@click.option("--priority", type=PRIORITIES)
@click.pass_context
def publish(
    ctx: click.Context, event: str, body: str | None, message_id: str | None, priority: str | None
) -> None:
    """Publish EVENT on the events exchange (needs RabbitMQ)."""
    settings = settings_of(ctx)
    payload = parse_json_object(body, "--body")
    if settings.embedded_broker:
        raise click.UsageError(
            "publish needs RabbitMQ: set LEGATO_BROKER_URL (the in-process broker lives inside a worker)"
        )

    async def go() -> None:
        async with client(settings, broker=True) as api:
            await api.publish_event(event, payload, message_id=message_id, priority=priority)

    run_async(go)
    echo(f"published {event}")


@click.command()
@click.argument("workflow")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "json"]), default="mermaid", show_default=True)
@click.pass_context
def graph(ctx: click.Context, workflow: str, fmt: str) -> None:
    """Print WORKFLOW's state graph (Mermaid, or JSON nodes and edges)."""
    definitions = require_app(settings_of(ctx))
    description = definitions.workflow(workflow).describe()
    if fmt == "mermaid":
        click.echo(description["mermaid"])
    else:
        dump_json(description)


COMMANDS = [start, list_runs, show, publish, graph]
