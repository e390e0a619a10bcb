"""The archive: finished runs as JSON Lines, one file per day and workflow.

``DIR/WORKFLOW/YYYY-MM-DD.jsonl`` holds the runs of WORKFLOW that finished on
that day (UTC), one JSON object a line: ``{"run": {...row...}, "history": [...]}``.
Lines are appended and flushed to disk before retention removes the runs, so
a crash between the two leaves a run archived twice, never lost.
"""

from __future__ import annotations

import calendar
import os
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import anyio
import orjson

from legato.machine.run import Run
from legato.store.base import HistoryEntry
from legato.store.ports import RunStore
from legato.store.retention import ExpiredRun, RetentionStore
from legato.store.rows import run_columns


class ExportSource(RetentionStore, RunStore, Protocol):
    """What the archive reads: runs by finish time, then each run and its history."""


@dataclass(frozen=True)
class ArchivedRun:
    run: Run
    history: Sequence[HistoryEntry]


def archive_line(archived: ArchivedRun) -> bytes:
    document = {"run": run_columns(archived.run), "history": [asdict(entry) for entry in archived.history]}
    return orjson.dumps(document) + b"\n"


def day_of(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def _safe(name: str) -> str:
    """A workflow name as a directory name: no separators, no dot-only names."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return cleaned if cleaned.strip(".") else f"_{cleaned}"


async def fetch(store: RunStore, run_ids: Sequence[str]) -> list[ArchivedRun]:
    """The runs (those still there) with their history."""
    found = []
    for run_id in run_ids:
        run = await store.load_run(run_id)
        if run is not None:
            found.append(ArchivedRun(run, await store.history(run_id)))
    return found


class Archive:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, workflow: str, day: str) -> Path:
        return self.directory / _safe(workflow) / f"{day}.jsonl"

    async def write(self, runs: Sequence[ArchivedRun]) -> list[Path]:
        """Append the runs to their files and flush them to disk; return the files written."""
        return await anyio.to_thread.run_sync(self._write, runs)

    def _write(self, runs: Sequence[ArchivedRun]) -> list[Path]:
        files: dict[Path, list[bytes]] = defaultdict(list)
        for archived in runs:
            finished = archived.run.finished_at or archived.run.updated_at
            files[self.path(archived.run.workflow, day_of(finished))].append(archive_line(archived))
        for path, lines in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as handle:
                handle.writelines(lines)
                handle.flush()
                os.fsync(handle.fileno())
        return sorted(files)

    async def replace(self, workflow: str, day: str, runs: Sequence[ArchivedRun]) -> Path:
        """Write the day's file of ``workflow`` anew with ``runs`` (``legato export``)."""
        return await anyio.to_thread.run_sync(self._replace, self.path(workflow, day), runs)

    def _replace(self, path: Path, runs: Sequence[ArchivedRun]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".jsonl.partial")
        with partial.open("wb") as handle:
            handle.writelines(archive_line(archived) for archived in runs)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(path)
        return path


async def export_day(
    store: ExportSource, archive: Archive, workflow: str, day: str, page: int = 500
) -> tuple[Path, int]:
    """Write every run of ``workflow`` finished on ``day`` (UTC, ``YYYY-MM-DD``) to its file."""
    since = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    runs: list[ArchivedRun] = []
    after: ExpiredRun | None = None
    while found := await store.finished_runs(workflow, since, since + 86400, after, page):
        runs += await fetch(store, [f.run_id for f in found])
        after = found[-1]
    return await archive.replace(workflow, day, runs), len(runs)
