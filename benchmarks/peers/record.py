"""Completion records for the peers with no run table of their own (Celery, Dramatiq).

The last step of a run inserts (created, finished) into ``bench_peers.completions``,
so every system's latency is measured the same way: from timestamps in Postgres.
Each worker thread keeps one autocommit connection.
"""

from __future__ import annotations

import threading
import time

import psycopg

from benchmarks.settings import DATABASE_URL, PEERS_SCHEMA

SCHEMA_SQL = [
    f"CREATE SCHEMA IF NOT EXISTS {PEERS_SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {PEERS_SCHEMA}.completions (
        system text NOT NULL, run_id text NOT NULL,
        created_at float8 NOT NULL, finished_at float8 NOT NULL,
        PRIMARY KEY (system, run_id))""",
    f"""CREATE TABLE IF NOT EXISTS {PEERS_SCHEMA}.join_parts (
        run_id text NOT NULL, branch integer NOT NULL, PRIMARY KEY (run_id, branch))""",
]

_local = threading.local()


def _conn() -> psycopg.Connection[tuple[object, ...]]:
    conn: psycopg.Connection[tuple[object, ...]] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(DATABASE_URL, autocommit=True)
        _local.conn = conn
    return conn


def finished(system: str, run_id: str, created_at: float) -> None:
    """Record that a run finished now; a redelivered last step records nothing twice."""
    _conn().execute(
        f"INSERT INTO {PEERS_SCHEMA}.completions VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (system, run_id, created_at, time.time()),
    )


def join_arrive(run_id: str, branch: int, branches: int) -> bool:
    """Record that ``branch`` is done; True for a caller that saw every branch done.

    Idempotent (a redelivered branch changes nothing). Two branches finishing
    at once may both see all done; the join step is recorded once all the same.
    """
    conn = _conn()
    conn.execute(
        f"INSERT INTO {PEERS_SCHEMA}.join_parts VALUES (%s, %s) ON CONFLICT DO NOTHING", (run_id, branch)
    )
    row = conn.execute(
        f"SELECT count(*) FROM {PEERS_SCHEMA}.join_parts WHERE run_id = %s", (run_id,)
    ).fetchone()
    return row is not None and int(str(row[0])) >= branches
