"""``legato dlq``: inspect, replay and purge dead letters."""

from __future__ import annotations

import re
import time
from typing import Any

import click
import orjson

from legato.cli.exits import ExitCode
from legato.cli.operate import answer_json
from legato.cli.render import (
    console,
    dead_letter_groups_table,
    dead_letters_table,
    echo,
    plain,
)
from legato.cli.runner import client, dump_json, parse_duration, run_async, say_if_truncated, settings_of
from legato.client import ReplayReport
from legato.errors import LegatoError
from legato.store.base import DeadLetterGroup, DeadLetterRecord
from legato.views import dead_letter_json, message_json


@click.group()
def dlq() -> None:
    """Dead letters: steps whose retries ran out, and messages that could not be processed."""


@dlq.command("list")
@click.option("--workflow", help="Only dead letters of this workflow.")
@click.option(
    "--group-by",
    type=click.Choice(["error", "state", "workflow"]),
    help="Failure patterns: count, first and last seen, a sample.",
)
@click.option(
    "--all", "include_all", is_flag=True, help="Include closed (replayed or resolved) dead letters."
)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(
    ctx: click.Context,
    workflow: str | None,
    group_by: str | None,
    include_all: bool,
    limit: int,
    as_json: bool,
) -> None:
    """List open dead letters, or group them into failure patterns."""
    settings = settings_of(ctx)
    status = None if include_all else "open"

    async def go() -> tuple[list[DeadLetterRecord] | list[DeadLetterGroup], int]:
        async with client(settings, broker=False) as api:
            if group_by:
                groups = await api.dead_letter_groups(group_by, workflow, status)
                return groups, len(groups)
            records = await api.dead_letters(workflow, status, limit)
            total = await api.count_dead_letters(workflow, status) if len(records) >= limit else len(records)
            return records, total

    found, total = run_async(go)
    if group_by:
        groups = [g for g in found if isinstance(g, DeadLetterGroup)]
        if as_json:
            dump_json([g.__dict__ for g in groups])
        else:
            console().print(dead_letter_groups_table(groups, group_by))
        return
    records = [r for r in found if isinstance(r, DeadLetterRecord)]
    if as_json:
        dump_json([dead_letter_json(r) for r in records])
    else:
        console().print(dead_letters_table(records))
    say_if_truncated(len(records), total)


@dlq.command("show")
@click.argument("dead_letter_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, dead_letter_id: int, as_json: bool) -> None:
    """Show one dead letter with its last error."""
    settings = settings_of(ctx)

    async def go() -> DeadLetterRecord:
        async with client(settings, broker=False) as api:
            return await api.dead_letter(dead_letter_id)

    record = run_async(go)
    if as_json:
        dump_json(dead_letter_json(record))
        return
    out = console()
    out.print(dead_letters_table([record]))
    if record.run_id:
        out.print(plain(f"run: {record.run_id}  (legato show {record.run_id})"))
    if record.error and record.error.traceback:
        out.print(plain(record.error.traceback), highlight=False)
    message = message_json(record)
    if message:
        out.print(plain(orjson.dumps(message, option=orjson.OPT_INDENT_2).decode()), highlight=False)


@dlq.command("replay")
@click.argument("dead_letter_id", type=int, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every open dead letter (of --workflow).")
@click.option("--workflow", help="With --all: only this workflow's dead letters.")
@click.option(
    "--json", "as_json", is_flag=True, help='Print one JSON object: {"replayed": [ids], "refused": [...]}.'
)
@click.pass_context
def replay(
    ctx: click.Context, dead_letter_id: int | None, replay_all: bool, workflow: str | None, as_json: bool
) -> None:
    """Resume the run of a dead letter from its failed step, with a fresh attempt budget.

    Exit code 1 when nothing was replayed and something was refused.
    """
    if (dead_letter_id is None) == (not replay_all):
        raise click.UsageError("give a dead letter ID or --all, not both")
    if workflow and not replay_all:
        raise click.UsageError("--workflow goes with --all")
    settings = settings_of(ctx)

    async def go() -> ReplayReport:
        async with client(settings, app=True) as api:
            if replay_all:
                return await api.replay_all(workflow)
            assert dead_letter_id is not None
            try:
                await api.replay(dead_letter_id)
            except LegatoError as exc:
                return ReplayReport([], {dead_letter_id: str(exc)})
            return ReplayReport([dead_letter_id], {})

    report = run_async(go)
    if as_json:
        dump_json(replay_json(report))
    else:
        _print_replays(report, replay_all)
    if report.refused and not report.replayed:
        ctx.exit(ExitCode.ERROR)


def replay_json(report: ReplayReport) -> dict[str, Any]:
    return {
        "replayed": report.replayed,
        "refused": [{"id": letter, "reason": reason} for letter, reason in report.refused.items()],
    }


def _print_replays(report: ReplayReport, replay_all: bool) -> None:
    for replayed in report.replayed:
        echo(f"replayed dead letter {replayed}")
    if not replay_all:
        for reason in report.refused.values():
            echo(f"not replayed: {reason}", err=True)
        return
    for refused, reason in report.refused.items():
        echo(f"dead letter {refused} not replayed: {reason}", err=True)
    # The summary last: the count, then each reason once with the dead letters it refused.
    click.echo(f"replayed {len(report.replayed)}, refused {len(report.refused)}")
    for reason, letters in refusals_by_reason(report.refused):
        which = ", ".join(str(n) for n in letters)
        echo(f"  refused {len(letters)}: {reason} (dead letters {which})", err=True)


_LETTER = re.compile(r"^dead letter \d+: ")
_LETTER_NAMED = re.compile(r"\bdead letter \d+\b")
_RUN_ID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def refusals_by_reason(refused: dict[int, str]) -> list[tuple[str, list[int]]]:
    """Refusals grouped by what they say, the letter's own id and its run's id
    masked (``run …``, ``dead letter …``), most frequent first."""
    groups: dict[str, list[int]] = {}
    for letter, reason in refused.items():
        masked = _LETTER_NAMED.sub("dead letter …", _RUN_ID.sub("…", _LETTER.sub("", reason)))
        groups.setdefault(masked, []).append(letter)
    return sorted(((reason, sorted(ids)) for reason, ids in groups.items()), key=lambda g: (-len(g[1]), g[0]))


@dlq.command("resolve")
@click.argument("dead_letter_id", type=int)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object: the resolved dead letter, or the error."
)
@click.pass_context
def resolve(ctx: click.Context, dead_letter_id: int, as_json: bool) -> None:
    """Close a dead letter without replaying it (its run is left as it is).

    For a run that cannot be resumed (compensated, cancelled) or was dealt with by hand.
    """
    settings = settings_of(ctx)

    async def go() -> DeadLetterRecord:
        async with client(settings, broker=False) as api:
            return await api.resolve(dead_letter_id)

    if as_json:
        # As the run actions answer: the record, or {"error": ...} with exit code 1.
        dump_json(dead_letter_json(answer_json(lambda: run_async(go))))
        return
    record = run_async(go)
    run = f"; run {record.run_id} is left as it is" if record.run_id else ""
    click.echo(f"resolved dead letter {record.id} (by {record.resolved_by}){run}")


@dlq.command("purge")
@click.option(
    "--older-than",
    "older_than",
    metavar="DURATION",
    help="Only those older than this (e.g. 30d, 12h); all when omitted.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def purge(ctx: click.Context, older_than: str | None, yes: bool) -> None:
    """Delete dead letters: the records and their copies in the dead-letter queue.

    This is the only way dead letters are ever deleted.
    """
    seconds = parse_duration(older_than) if older_than is not None else None
    settings = settings_of(ctx)
    cutoff = time.time() - seconds if seconds is not None else None
    if not yes:

        async def count() -> int:
            async with client(settings, broker=False) as api:
                return await api.count_dead_letters(status=None, older_than=cutoff)

        which = f"older than {older_than}" if older_than else "open or resolved"
        click.confirm(
            f"Delete {run_async(count):,} dead letters ({which}) and their copies in the dead-letter queue?",
            abort=True,
        )

    async def go() -> tuple[int, int]:
        async with client(settings) as api:
            return await api.purge_dead_letters(cutoff)

    records, queued = run_async(go)
    click.echo(f"purged {records} dead letters and {queued} messages from the dead-letter queue")
