"""``legato schedule``: list, show, create, update, pause, resume, delete,
trigger and backfill schedules (docs/events.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from legato.cli.render import echo
from legato.cli.runner import client, dump_json, parse_duration, parse_json_object, run_async, settings_of
from legato.machine.schedules import Cron, Every, Overlap, Schedule
from legato.scheduling.manage import Schedules
from legato.store.base import Fired, StoredSchedule, TickRecord
from legato.views import schedule_json, tick_json

T = TypeVar("T")


@click.group()
def schedule() -> None:
    """Schedules: workflows started on a clock (cron or interval)."""


def _run(ctx: click.Context, action: Callable[[Schedules], Awaitable[T]], app: bool = False) -> T:
    settings = settings_of(ctx)

    async def go() -> T:
        async with client(settings, app=app) as api:
            return await action(api.schedules)

    return run_async(go)


def _stamp(value: float | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def _fired_json(fired: Fired | None) -> list[dict[str, Any]]:
    created = fired.created if fired is not None else ()
    return [{"run_id": c.run.id, "created": c.created} for c in created]


@schedule.command("list")
@click.option("--workflow", help="Only the schedules of this workflow.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx: click.Context, workflow: str | None, as_json: bool) -> None:
    """List schedules with their next fire time."""
    found = _run(ctx, lambda s: s.all(workflow))
    if as_json:
        dump_json([schedule_json(s) for s in found])
        return
    for s in found:
        state = "paused" if s.paused else f"next {_stamp(s.timer_at)}"
        echo(f"{s.name}\t{s.workflow}\t{s.schedule.describe()}\t{s.source.value}\t{state}")


@schedule.command("show")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.pass_context
def show(ctx: click.Context, name: str, limit: int) -> None:
    """A schedule and its latest ticks (started, missed, skipped...), as JSON (times in epoch seconds)."""

    async def go(s: Schedules) -> tuple[StoredSchedule, list[TickRecord]]:
        return await s.get(name), await s.ticks(name, limit)

    stored, ticks = _run(ctx, go)
    dump_json({**schedule_json(stored), "ticks": [tick_json(t) for t in ticks]})


def _spec_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--cron", help="A cron expression, e.g. '0 9 * * MON-FRI'."),
            click.option("--tz", help="The cron expression's time zone (IANA name); UTC by default."),
            click.option("--every", help="An interval instead of cron: 90, 30s, 15m, 1h."),
            click.option("--input", "input_", help="The runs' input: JSON object, or @file.json."),
            click.option("--overlap", type=click.Choice([o.value for o in Overlap])),
            click.option("--catch-up-window", help="Missed ticks older than this are skipped: 60s, 1h."),
            click.option("--jitter", help="Up to this much delay per tick: 10s."),
        ]
    ):
        function = option(function)
    return function


def _build(base: Schedule | None, options: dict[str, Any]) -> Schedule:
    changes: dict[str, Any] = {}
    if options["input_"] is not None:
        changes["input"] = parse_json_object(options["input_"], "--input")
    if options["overlap"] is not None:
        changes["overlap"] = Overlap(options["overlap"])
    if options["catch_up_window"] is not None:
        changes["catch_up_window"] = parse_duration(options["catch_up_window"])
    if options["jitter"] is not None:
        changes["jitter"] = parse_duration(options["jitter"])
    if options["cron"] is not None and options["every"] is not None:
        raise click.UsageError("give --cron or --every, not both")
    keep = (
        {k: getattr(base, k) for k in ("name", "input", "overlap", "catch_up_window", "jitter")}
        if base
        else {}
    )
    if options["cron"] is not None or (isinstance(base, Cron) and options["every"] is None):
        expression = options["cron"] or (base.expression if isinstance(base, Cron) else "")
        tz = options["tz"] or (base.tz if isinstance(base, Cron) else "UTC")
        return Cron(expression, tz=tz, **{**keep, **changes})
    if options["every"] is not None:
        return Every(parse_duration(options["every"]), **{**keep, **changes})
    if base is None:
        raise click.UsageError("give --cron EXPRESSION or --every INTERVAL")
    return dataclasses.replace(base, **changes)


@schedule.command("create")
@click.argument("name")
@click.option("--workflow", required=True)
@_spec_options
@click.pass_context
def create(ctx: click.Context, /, name: str, workflow: str, **options: Any) -> None:
    """Create a schedule at run time; it survives restarts and deploys."""
    built = dataclasses.replace(_build(None, options), name=name)
    stored = _run(ctx, lambda s: s.create(workflow, built), app=True)
    dump_json(schedule_json(stored))


@schedule.command("update")
@click.argument("name")
@_spec_options
@click.pass_context
def update(ctx: click.Context, /, name: str, **options: Any) -> None:
    """Change a schedule's times or options; what is not given stays."""

    async def go(s: Schedules) -> StoredSchedule:
        current = await s.get(name)
        return await s.update(name, _build(current.schedule, options))

    dump_json(schedule_json(_run(ctx, go)))


@schedule.command("pause")
@click.argument("name")
@click.pass_context
def pause(ctx: click.Context, name: str) -> None:
    """Stop firing (its timer goes) until resumed."""
    dump_json(schedule_json(_run(ctx, lambda s: s.pause(name))))


@schedule.command("resume")
@click.argument("name")
@click.pass_context
def resume(ctx: click.Context, name: str) -> None:
    """Fire again from the next tick; ticks that fell while paused are not caught up."""
    dump_json(schedule_json(_run(ctx, lambda s: s.resume(name))))


@schedule.command("delete")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete a schedule (a code-declared one comes back on the next worker start)."""
    _run(ctx, lambda s: s.delete(name))
    echo(f"deleted schedule {name}")


@schedule.command("trigger")
@click.argument("name")
@click.pass_context
def trigger(ctx: click.Context, name: str) -> None:
    """Start one run of the schedule now, outside its ticks."""
    dump_json(_fired_json(_run(ctx, lambda s: s.trigger(name), app=True)))


@schedule.command("backfill")
@click.argument("name")
@click.option("--start", "start", required=True, help="ISO time, e.g. 2026-01-01T00:00:00+00:00.")
@click.option("--end", "end", required=True, help="ISO time; ticks in [start, end] are started.")
@click.pass_context
def backfill(ctx: click.Context, name: str, start: str, end: str) -> None:
    """Start the runs of the ticks between two times; a tick that has its run is not started twice."""
    first, last = datetime.fromisoformat(start).timestamp(), datetime.fromisoformat(end).timestamp()
    dump_json(_fired_json(_run(ctx, lambda s: s.backfill(name, first, last), app=True)))
