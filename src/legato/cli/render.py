"""Tables and JSON for the CLI."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from legato.machine.run import Run, RunStatus
from legato.machine.vocabulary import HistoryKind
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


def status_text(status: RunStatus) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status.value}[/]"


def runs_table(runs: Sequence[Run], title: str = "Runs") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("run", "workflow", "status", "at", "version", "started", "took"):
        table.add_column(column)
    for run in runs:
        took = (run.finished_at - run.created_at) if run.finished_at else None
        table.add_row(
            run.id,
            f"{run.workflow} v{run.workflow_version}",
            status_text(run.status),
            ", ".join(run.current_states) or "-",
            str(run.version),
            when(run.created_at),
            duration(took),
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
    table = Table(title=f"{run.workflow} run {run.id} - {run.status.value}", title_justify="left")
    for column in ("v", "+time", "event", "state", "attempt", "detail"):
        table.add_column(column, overflow="fold")
    for entry in history:
        table.add_row(
            "-" if entry.kind is HistoryKind.REJECTED else str(entry.version),
            duration(entry.at - run.created_at),
            entry.kind.value,
            entry.state or "",
            str(entry.attempt) if entry.attempt else "",
            summarise(entry),
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
            str(r.id),
            when(r.created_at),
            r.source,
            r.workflow or "-",
            r.state or "-",
            str(r.attempts),
            r.reason,
            error[:80],
            r.status,
        )
    return table


def dead_letter_groups_table(groups: Sequence[DeadLetterGroup], by: str) -> Table:
    table = Table(title=f"Dead letters by {by}", title_justify="left")
    for column in (by, "count", "first seen", "last seen", "sample", "sample id"):
        table.add_column(column, overflow="fold")
    for g in groups:
        table.add_row(
            g.key,
            str(g.count),
            when(g.first_seen),
            when(g.last_seen),
            g.sample_error[:80],
            str(g.sample_id),
        )
    return table
