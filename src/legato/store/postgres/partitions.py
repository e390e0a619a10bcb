"""History's partitions (migration 0017, docs/retention.md): one per UTC day of
the runs' creation, created ahead by the workers, dropped whole by retention
once no run created that day is left.

A partition is named ``history_YYYYMMDD`` after its day; ``history_default``
takes rows no partition covers (so an insert never fails) and is never dropped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg

from legato.store.retention import Cutoff, ExpiredRun, HistoryPartition, Removed

if TYPE_CHECKING:
    from legato.store.postgres.rows import Conn

DDL_LOCK_TIMEOUT = "5s"
"""How long partition DDL waits for history's lock. Creating or dropping a
partition locks the whole table briefly; waiting behind a long transaction
would stall every transition queued behind the DDL, so it gives up instead and
the next maintenance pass tries again."""

log = logging.getLogger("legato.store")

_NAME = re.compile(r"^history_(\d{8})$")

_PARTITIONED = "SELECT relkind = 'p' FROM pg_class WHERE oid = 'history'::regclass"

_PARTITIONS = """
SELECT c.relname AS name FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'history'::regclass
"""

_CREATE = "CREATE TABLE {name} PARTITION OF history FOR VALUES FROM ('{since}') TO ('{until}')"

# Rows of the day that went to the default partition (no partition existed for
# it when they were written) move into the new partition, attached after.
_MOVE_FROM_DEFAULT = (
    "CREATE TABLE {name} (LIKE history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    """WITH moved AS (
        DELETE FROM history_default WHERE run_created_at >= '{since}' AND run_created_at < '{until}'
        RETURNING *
    ) INSERT INTO {name} SELECT * FROM moved""",
    "ALTER TABLE history ATTACH PARTITION {name} FOR VALUES FROM ('{since}') TO ('{until}')",
)

# A run must be kept unless it is finished before its workflow's cutoff (or the
# default's) and has no open dead letter; a NULL cutoff (no retention) keeps it.
_KEEPS_A_RUN = """
SELECT EXISTS (
    SELECT 1 FROM runs r
    LEFT JOIN unnest($3::text[], $4::float8[]) AS c(workflow, before) ON c.workflow = r.workflow
    WHERE r.created_at >= $1 AND r.created_at < $2
      AND (r.finished_at < to_timestamp(coalesce(c.before, $5::float8))
           AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.run_id = r.id AND d.status = 'open'))
          IS NOT TRUE
)
"""

_FINISHED_CREATED = """
SELECT id, workflow, finished_at FROM runs
WHERE created_at >= $1 AND created_at < $2 AND finished_at IS NOT NULL
ORDER BY created_at LIMIT $3
"""

_ANY_RUN_CREATED = "SELECT EXISTS (SELECT 1 FROM runs WHERE created_at >= $1 AND created_at < $2)"

_DELETE_ORPHANS_OF_DAY = """
DELETE FROM history h
WHERE h.run_created_at >= $1 AND h.run_created_at < $2
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = h.run_id)
"""

_DELETE_ORPHANS = """
DELETE FROM {name} h WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = h.run_id)
"""


def partition_of(day: date) -> HistoryPartition:
    since = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return HistoryPartition(
        f"history_{day:%Y%m%d}", since.timestamp(), (since + timedelta(days=1)).timestamp()
    )


def _day(name: str) -> date | None:
    found = _NAME.match(name)
    return datetime.strptime(found.group(1), "%Y%m%d").date() if found else None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _sql(template: str, partition: HistoryPartition) -> str:
    # The name and bounds come from a date, never from input: safe to format in.
    return template.format(name=partition.name, since=_iso(partition.since), until=_iso(partition.until))


async def partitions(conn: Conn) -> list[HistoryPartition]:
    """The day partitions, oldest first (not the default one)."""
    days = sorted(d for r in await conn.fetch(_PARTITIONS) if (d := _day(r["name"])) is not None)
    return [partition_of(d) for d in days]


async def prepare(conn: Conn, now: float, days_ahead: int) -> list[str]:
    if not await conn.fetchval(_PARTITIONED):
        return []  # one plain table (benchmarks' "legato-flat" keeps the old layout)
    today = datetime.fromtimestamp(now, UTC).date()
    wanted = [partition_of(today + timedelta(days=n)) for n in range(-1, days_ahead + 1)]
    have = {p.name for p in await partitions(conn)}
    created = []
    for partition in wanted:
        if partition.name in have:
            continue
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
                await conn.execute(_sql(_CREATE, partition))
        except asyncpg.exceptions.CheckViolationError:
            await _move_from_default(conn, partition)
        except (asyncpg.exceptions.LockNotAvailableError, asyncpg.exceptions.DuplicateTableError):
            continue  # busy now, or another process made it: the next pass sees
        except asyncpg.exceptions.InsufficientPrivilegeError:
            await _not_the_owner(conn, "create the history partitions ahead")
            break  # new rows go to the default partition meanwhile: nothing is lost
        created.append(partition.name)
    return created


async def _not_the_owner(conn: Conn, what: str) -> None:
    """Say once per process and schema that this role cannot run DDL on ``history``.

    Least-privilege deployments migrate with an owner role and run workers with a
    role that may only read and write rows: the workers then carry on without
    partition DDL (inserts land in the default partition; retention deletes rows),
    and the owner creates the partitions (``legato retention run``).
    """
    row = await conn.fetchrow("SELECT current_user AS role, current_schema() AS schema")
    assert row is not None
    role, schema = row["role"], row["schema"]
    if (what, role, schema) in _WARNED:
        return
    _WARNED.add((what, role, schema))
    log.warning(
        "cannot %s: role %r does not own the history table; run `legato retention run` "
        "as the owner (for example daily, beside `legato migrate`) to keep history partitioned",
        what,
        role,
    )


_WARNED: set[tuple[str, str, str]] = set()


async def _move_from_default(conn: Conn, partition: HistoryPartition) -> None:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
        for statement in _MOVE_FROM_DEFAULT:
            await conn.execute(_sql(statement, partition))


async def droppable(conn: Conn, cutoffs: Sequence[Cutoff]) -> list[HistoryPartition]:
    if not cutoffs:
        return []
    latest = max(c.finished_before for c in cutoffs)
    named = [c for c in cutoffs if c.workflow is not None]
    default = next((c.finished_before for c in cutoffs if c.workflow is None), None)
    found = []
    for partition in await partitions(conn):
        # A run finishes after it starts: a day ending after every cutoff keeps
        # its runs (and is where new runs go).
        if partition.until > latest:
            break
        keeps = await conn.fetchval(
            _KEEPS_A_RUN,
            partition.since,
            partition.until,
            [c.workflow for c in named],
            [c.finished_before for c in named],
            default,
        )
        if not keeps:
            found.append(partition)
    return found


async def finished_runs_created(conn: Conn, partition: HistoryPartition, limit: int) -> list[ExpiredRun]:
    rows = await conn.fetch(_FINISHED_CREATED, partition.since, partition.until, limit)
    return [ExpiredRun(r["id"], r["workflow"], r["finished_at"]) for r in rows]


async def drop(conn: Conn, partition: HistoryPartition) -> Removed:
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
            # No run created in the range can appear any more (new runs are
            # created now, and this day is past every cutoff): once none is
            # left, none will be.
            if await conn.fetchval(_ANY_RUN_CREATED, partition.since, partition.until):
                status = await conn.execute(_sql(_DELETE_ORPHANS, partition))
                return Removed(history=int(status.rsplit(" ", 1)[-1]))
            await conn.execute(f"DROP TABLE IF EXISTS {partition.name}")
    except asyncpg.exceptions.LockNotAvailableError:
        return Removed()
    except asyncpg.exceptions.InsufficientPrivilegeError:
        # The runs just removed left their history here: their rows go instead.
        # Through the parent: a role without DDL rights may have none on the partition.
        await _not_the_owner(conn, "drop old history partitions")
        status = await conn.execute(_DELETE_ORPHANS_OF_DAY, partition.since, partition.until)
        return Removed(history=int(status.rsplit(" ", 1)[-1]))
    return Removed(history_partitions=1)
