"""Measuring flow control from what the engine recorded: step intervals from the history."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from legato.store.postgres import PostgresStore


@dataclass(frozen=True)
class Attempt:
    run_id: str
    state: str
    started: float
    finished: float
    waited: dict[str, float]
    data: dict[str, object]
    priority: int


async def attempts(store: PostgresStore, workflow: str | None = None) -> list[Attempt]:
    """Every recorded step attempt (succeeded or failed), oldest start first."""
    rows = await store.pool.fetch(
        """
        SELECT h.run_id, h.state, h.detail, r.data, r.priority
        FROM history h JOIN runs r ON r.id = h.run_id
        WHERE h.kind IN ('step_succeeded', 'step_failed') AND ($1::text IS NULL OR r.workflow = $1)
        """,
        workflow,
    )
    found = [
        Attempt(
            r["run_id"],
            r["state"],
            r["detail"]["started_at"],
            r["detail"]["finished_at"],
            r["detail"].get("waited", {}),
            r["data"],
            r["priority"],
        )
        for r in rows
    ]
    return sorted(found, key=lambda a: a.started)


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """The most events in any closed window of ``width`` seconds."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] < t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (touching ends do not overlap)."""
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(f, -1) for _, f in intervals], key=lambda e: (e[0], e[1])
    )
    best = current = 0
    for _, change in events:
        current += change
        best = max(best, current)
    return best


async def create_table(dsn: str, schema: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
