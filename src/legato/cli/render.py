"""Tables and JSON for the CLI.

The terminal shows data, never obeys it: every value that comes from a run,
an event, an error or an operator goes into a table as :class:`rich.text.Text`
(never parsed as rich markup, so ``[/]`` or ``[link=…]`` print as written),
and through :func:`~legato.printable.printable`, which makes terminal control
characters (ESC, CSI, OSC, BEL, bidi overrides...) visible as escapes instead
of sending them to the operator's terminal.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from legato.machine.run import Run, RunStatus
from legato.machine.vocabulary import HistoryKind
from legato.printable import printable
from legato.store.base import DeadLetterGroup, DeadLetterRecord, HistoryEntry

STATUS_STYLE = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "red",
    RunStatus.COMPENSATED: "yellow",
    RunStatus.COMPENSATING: "yellow",
    RunStatus.CANCELLED: "magenta",
    RunStatus.SUSPENDED: "bold red",
    RunStatus.PAUSED: "bold yellow",
    RunStatus.RUNNING: "cyan",
    RunStatus.PENDING: "cyan",
}


def plain(value: object, style: str = "") -> Text:
    """A table cell or line holding ``value`` literally: no markup, no control codes."""
    return Text(printable(value), style=style)


def echo(value: object, *, err: bool = False) -> None:
    """``click.echo`` for text that carries data."""
    click.echo(printable(value), err=err)


def console() -> Console:
    # Not a terminal (CI, a pipe): do not squeeze tables into 80 columns.
    width = shutil.get_terminal_size((140, 40)).columns
    return Console(width=max(width, 120), soft_wrap=False)


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def status_text(status: RunStatus) -> Text:
    return plain(status.value, STATUS_STYLE.get(status, "white"))


def runs_table(runs: Sequence[Run], title: str = "Runs") -> Table:
    table = Table(title=plain(title), title_justify="left")
    for column in ("run", "workflow", "status", "at", "version", "started", "took"):
        table.add_column(column)
    for run in runs:
        took = (run.finished_at - run.created_at) if run.finished_at else None
        table.add_row(
            plain(run.id),
            plain(f"{run.workflow} v{run.workflow_version}"),
            status_text(run.status),
            plain(", ".join(run.current_states) or "-"),
            plain(run.version),
            plain(when(run.created_at)),
            plain(duration(took)),
        )
    return table


def summarise(entry: HistoryEntry) -> str:
    detail = entry.detail
    parts: list[str] = []
    if "error" in detail and isinstance(detail["error"], dict):
        error = detail["error"]
        parts.append(f"{error.get('type')}: {error.get('message')}")
    for key in (
        "outcome",
        "next",
        "rule",
        "reason",
        "status",
        "signal",
        "delay",
        "duration",
        "branch",
        "running",
        "released",
    ):
        if key in detail and detail[key] is not None:
            value = detail[key]
            if key in ("delay", "duration") and isinstance(value, float):
                value = duration(value)
            parts.append(f"{key}={value}")
    waited = detail.get("waited")
    if isinstance(waited, dict) and waited:
        parts.append("waited " + ", ".join(f"{name} {duration(float(s))}" for name, s in waited.items()))
    if entry.actor:
        parts.append(f"by {entry.actor}")
    return "; ".join(parts)


def history_table(run: Run, history: Sequence[HistoryEntry]) -> Table:
    table = Table(title=plain(f"{run.workflow} run {run.id} - {run.status.value}"), title_justify="left")
    for column in ("v", "+time", "event", "state", "attempt", "detail"):
        table.add_column(column, overflow="fold")
    for entry in history:
        table.add_row(
            plain("-" if entry.kind is HistoryKind.REJECTED else entry.version),
            plain(duration(entry.at - run.created_at)),
            plain(entry.kind.value),
            plain(entry.state or ""),
            plain(entry.attempt if entry.attempt else ""),
            plain(summarise(entry)),
        )
    return table


def dead_letters_table(records: Sequence[DeadLetterRecord]) -> Table:
    table = Table(title="Dead letters", title_justify="left")
    for column in (
        "id",
        "when",
        "source",
        "workflow",
        "state",
        "attempts",
        "reason",
        "error",
        "status",
    ):
        table.add_column(column, overflow="fold")
    for r in records:
        error = f"{r.error.type}: {r.error.message}" if r.error else ""
        table.add_row(
            plain(r.id),
            plain(when(r.created_at)),
            plain(r.source),
            plain(r.workflow or "-"),
            plain(r.state or "-"),
            plain(r.attempts),
            plain(r.reason),
            plain(error[:80]),
            plain(r.status),
        )
    return table


def dead_letter_groups_table(groups: Sequence[DeadLetterGroup], by: str) -> Table:
    table = Table(title=f"Dead letters by {by}", title_justify="left")
    for column in (by, "count", "first seen", "last seen", "sample", "sample id"):
        table.add_column(column, overflow="fold")
    for g in groups:
        table.add_row(
            plain(g.key),
            plain(g.count),
            plain(when(g.first_seen)),
            plain(when(g.last_seen)),
            plain(g.sample_error[:80]),
            plain(g.sample_id),
        )
    return table
