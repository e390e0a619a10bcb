"""The harness's own Postgres access (set-up, progress polling, reading timings)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from benchmarks.metrics import Timing
from benchmarks.settings import DATABASE_URL


async def execute(*statements: str, url: str = DATABASE_URL) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def fetch(query: str, *args: Any, url: str = DATABASE_URL) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def fetch_counts(query: str, *args: Any, url: str = DATABASE_URL) -> tuple[int, int]:
    """A query selecting (finished, failed)."""
    row = (await fetch(query, *args, url=url))[0]
    return int(row[0] or 0), int(row[1] or 0)


async def fetch_timings(query: str, *args: Any, url: str = DATABASE_URL) -> Sequence[Timing]:
    """A query selecting (created, finished) as epoch seconds."""
    return [Timing(float(r[0]), float(r[1])) for r in await fetch(query, *args, url=url)]
