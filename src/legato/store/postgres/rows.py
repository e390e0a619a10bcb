"""How legato's values travel to and from Postgres: codecs and row conversions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson

from legato.machine.run import Run
from legato.store.base import DeadLetterRecord, OutboxMessage
from legato.store.rows import (
    CHANGING_COLUMNS,
    RUN_COLUMNS,
    Row,
    dead_letter_from_columns,
    run_columns,
)
from legato.store.rows import run_from_row as decode_run_row

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = PoolConnectionProxy[asyncpg.Record]  # generic in the stubs only

_PG_EPOCH = 946684800.0  # 2000-01-01T00:00:00Z, where Postgres counts time from


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


def _encode_ts(value: float) -> tuple[int]:
    return (round((value - _PG_EPOCH) * 1_000_000),)


def _decode_ts(value: tuple[int]) -> float:
    return value[0] / 1_000_000 + _PG_EPOCH


async def init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "timestamptz", encoder=_encode_ts, decoder=_decode_ts, schema="pg_catalog", format="tuple"
    )
    await conn.set_type_codec("uuid", encoder=str, decoder=str, schema="pg_catalog", format="text")


async def keep_session(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection given back to it: nothing.

    asyncpg's default reset runs a query (a round trip) on every release to clear
    session state. legato leaves none behind -- transactions are managed and
    asyncpg rolls back one left open anyway, advisory locks are transaction-scoped,
    LISTEN has a connection of its own -- so the reset is pure overhead.
    """


CONNECTION_LOST = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,  # class 08: the connection broke
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, restart, terminated backend
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # class 40: deadlock, serialization; rolled back whole
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a failover left us on a read-only server
    asyncpg.exceptions.InterfaceError,  # "connection is closed" on a pooled connection
    # "cannot switch to state 12; another operation (2) is in progress": what asyncpg
    # raises instead of a connection error in about a quarter of the cases where its
    # backend is terminated while a query is in flight (restart, pg_terminate_backend).
    asyncpg.exceptions.InternalClientError,
)
"""Errors that mean "the database cannot take this now, try again", not "the
statement was wrong": each becomes a StoreError, which the worker treats as an
outage (the delivery goes back to the queue; side tasks back off)."""


def connection_lost(exc: BaseException, conn: asyncpg.Connection | Conn | None) -> bool:
    """Whether ``exc`` means the connection (or the database) is gone for now.

    Besides the known kinds, any error after which the connection is closed was
    caused by its loss: whatever asyncpg happened to raise, it is an outage.
    """
    if isinstance(exc, CONNECTION_LOST):
        return True
    return isinstance(exc, Exception) and conn is not None and conn.is_closed()


_ABSENT = object()


def stored_data(run: Run) -> dict[str, Any]:
    """What ``runs.data`` holds: the keys of the run's data that are not its input's.

    A run starts with its input as its data, so storing both would keep (and
    read, on every step) the input twice. The row keeps the input once, and
    ``data`` only what the run's steps set over it; the run's data is
    ``input || data`` (:func:`legato.store.rows.over_input`). A row holding a whole document, as
    rows written before this layout do, reads the same: its keys cover the input's.
    The data's values are the input's own objects until a step replaces them,
    so an identity check finds what changed without comparing documents.
    """
    given = run.input
    if not isinstance(given, dict):
        return dict(run.data)
    return {k: v for k, v in run.data.items() if given.get(k, _ABSENT) is not v}


def stored_columns(run: Run) -> dict[str, Any]:
    """Every column of a run's row as Postgres keeps it (``data`` over the input)."""
    values = run_columns(run)
    values["data"] = stored_data(run)
    return values


def run_args(run: Run) -> tuple[Any, ...]:
    values = stored_columns(run)
    return tuple(values[column] for column in RUN_COLUMNS)


def columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to the column arrays that ``unnest`` takes."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def run_document(run: Run, previous_version: int, data_set: frozenset[str] | None) -> dict[str, Any]:
    """One run's row of the group commit, as jsonb_to_recordset reads it.

    With ``data_set`` (the keys the transition set), the row carries only those
    keys as ``patch`` and the statement merges them into the stored document:
    a step's write costs what it adds, not the size of the run's data, and an
    unchanged document keeps its stored (TOASTed) value as it is.
    """
    values = run_columns(run)
    row = {"id": run.id, "prev": previous_version, **{c: values[c] for c in CHANGING_COLUMNS}}
    if data_set is None:
        row["data"] = stored_data(run)
    else:
        row["data"] = None
        row["patch"] = {key: run.data[key] for key in data_set}
    return row


def run_from_row(row: Row) -> Run:
    return decode_run_row(row, data_over_input=True)


def outbox_from_row(row: Row) -> OutboxMessage:
    return OutboxMessage(row["id"], row["run_id"], row["kind"], row["body"], row["priority"], row["headers"])


def dead_letter_from_row(row: Row) -> DeadLetterRecord:
    return dead_letter_from_columns(row)
