"""Rows of the schedules tables, as both backends read and write them."""

from __future__ import annotations

from typing import Any

from legato.machine.schedules import schedule_from_json
from legato.machine.vocabulary import TickOutcome
from legato.store.base import Created, ScheduleFiring, ScheduleSource, StoredSchedule, TickRecord
from legato.store.rows import Row


def stored_schedule(row: Row, spec: Any, input: Any) -> StoredSchedule:
    """A schedule from its row; ``spec`` and ``input`` already decoded from JSON."""
    return StoredSchedule(
        workflow=row["workflow"],
        schedule=schedule_from_json(row["name"], spec, input),
        source=ScheduleSource(row["source"]),
        paused=bool(row["paused"]),
        next_tick=row["next_tick"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        buffered=row["buffered"],
        last_run_id=row["last_run_id"],
        timer_at=row["timer_at"],
    )


def tick_record(row: Row) -> TickRecord:
    return TickRecord(
        row["schedule"], TickOutcome(row["outcome"]), row["nominal"], row["count"], row["run_id"], row["at"]
    )


def tick_rows(firing: ScheduleFiring, created: list[Created]) -> list[tuple[str, float, int, str | None]]:
    """(outcome, nominal, count, run id) per history line; a started line names
    the run of its tick (created now, or found by its key)."""
    run_of = {nominal: c.run.id for (nominal, _), c in zip(firing.runs, created, strict=True)}
    return [
        (
            line.outcome.value,
            line.nominal,
            line.count,
            run_of.get(line.nominal) if line.outcome in _RUN_LINES else None,
        )
        for line in firing.lines
    ]


_RUN_LINES = frozenset({TickOutcome.STARTED, TickOutcome.TRIGGERED})


def last_run(created: list[Created]) -> str | None:
    return created[-1].run.id if created else None
