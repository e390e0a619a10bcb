"""Rows to values and back: shared by every SQL backend (a decision's rows come
from :mod:`legato.store.effects`)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson

from legato.machine.commands import DeadLetter
from legato.machine.errors import ErrorInfo
from legato.machine.run import Run, RunStatus
from legato.machine.values import JSON
from legato.machine.vocabulary import HistoryKind, TimerPurpose
from legato.patterns import failure_key
from legato.store.base import DeadLetterGroup, DeadLetterRecord, DueTimer, HistoryEntry, PoisonMessage

log = logging.getLogger("legato.store")


class Row(Protocol):
    """A database row: asyncpg's Record and sqlite3's Row both fit."""

    def __getitem__(self, key: str, /) -> Any: ...


def new_run_id() -> str:
    return str(uuid.uuid4())


def canonical_run_id(run_id: str) -> str | None:
    """A run id as stored (lower case, with hyphens), or None if it is no uuid."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return None


def run_id_range(prefix: str) -> tuple[str, str] | None:
    """The lowest and highest run ids starting with ``prefix`` (canonical form),
    or None when no run id can start with it.

    A range, not a pattern: both backends find it on the primary key's index.
    """
    wanted = prefix.strip().lower()
    digits = wanted.replace("-", "")
    if not digits or len(digits) > 32 or any(c not in "0123456789abcdef" for c in digits):
        return None
    low = str(uuid.UUID(hex=digits.ljust(32, "0")))
    high = str(uuid.UUID(hex=digits.ljust(32, "f")))
    # Hyphens count: "3f2a1b4c-9" is a prefix of run ids, "3f2a-1b4c" of none.
    return (low, high) if low.startswith(wanted) else None


def dead_letter_body(run: Run, letter: DeadLetter, dead_letter_id: int) -> bytes:
    """The message sent to the dead-letter queue: enough to find the record."""
    return orjson.dumps(
        {
            "dead_letter": dead_letter_id,
            "run": run.id,
            "workflow": run.workflow,
            "state": letter.state,
            "seq": letter.seq,
            "attempt": letter.attempt,
            "kind": letter.kind.value,
            "reason": letter.reason,
            "error": {"type": letter.error.type, "message": letter.error.message},
        }
    )


def dead_letter_headers(letter: DeadLetter) -> dict[str, str]:
    return {
        "x-legato-reason": letter.reason,
        "x-legato-error": f"{letter.error.type}: {letter.error.message}"[:512],
    }


RUN_COLUMNS = (
    "id", "workflow", "workflow_version", "status", "version", "priority", "idempotency_key",
    "input", "data", "machine", "current_states", "error", "trace_context", "deadline", "sla_met",
    "created_at", "updated_at", "finished_at", "search",
)  # fmt: skip
"""A run row's columns, in the order of the stores' INSERT statements."""

CHANGING_COLUMNS = (
    "status", "version", "priority", "data", "machine", "current_states", "error",
    "trace_context", "deadline", "sla_met", "updated_at", "finished_at", "search",
)  # fmt: skip
"""What a transition can change, in the order of the stores' UPDATE statements."""

JSON_COLUMNS = frozenset({"input", "data", "machine", "current_states", "error", "trace_context", "search"})


def run_columns(run: Run) -> dict[str, Any]:
    """Every column of a run's row; JSON columns as Python values, each store
    encodes them its own way."""
    return {
        "id": run.id,
        "workflow": run.workflow,
        "workflow_version": run.workflow_version,
        "status": run.status.value,
        "version": run.version,
        "priority": run.priority,
        "idempotency_key": run.idempotency_key,
        "input": run.input,
        "data": run.data,
        "machine": run.machine_json(),
        "current_states": list(run.current_states),
        "error": run.error.to_json() if run.error else None,
        "trace_context": dict(run.trace_context) if run.trace_context else None,
        "deadline": run.deadline,
        "sla_met": run.sla_met,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
        "search": dict(run.search) if run.search is not None else None,
    }


def run_from_columns(
    *,
    id: str,
    workflow: str,
    workflow_version: int,
    status: str,
    version: int,
    priority: int,
    idempotency_key: str | None,
    input: JSON,
    data: JSON,
    machine: JSON,
    error: JSON,
    trace_context: JSON,
    deadline: float | None,
    sla_met: bool | None,
    created_at: float,
    updated_at: float,
    finished_at: float | None,
    search: JSON = None,
) -> Run:
    run = Run(
        id=id,
        workflow=workflow,
        workflow_version=workflow_version,
        status=RunStatus(status),
        version=version,
        input=input,
        data=data,
        created_at=created_at,
        updated_at=updated_at,
        priority=priority,
        idempotency_key=idempotency_key,
        trace_context=trace_context,
        finished_at=finished_at,
        deadline=deadline,
        sla_met=None if sla_met is None else bool(sla_met),
        error=ErrorInfo.from_json(error) if error else None,
        search=search,
    )
    return run.with_machine(machine)


def storable_text(text: str) -> str:
    """``text`` as every backend can keep it: a NUL character (which Postgres
    text and jsonb refuse) shown as ``\\x00``, and lone surrogates (which are no
    UTF-8) as ``\\udcxx``. A reason or a header of a poison message may hold
    anything; its dead letter must be recorded all the same."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def storable_json(value: JSON) -> JSON:
    """``value`` with every string (keys too) made :func:`storable_text`."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): storable_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable_json(v) for v in value]
    return value


def poison_row(poison: PoisonMessage) -> tuple[Any, ...]:
    """The columns of a poison message's dead letter, in the order of both
    backends' ``INSERT_POISON``: reason, message, fingerprint, run id, state,
    seq, attempt, body. The body is kept as bytes, exactly as delivered."""
    message = storable_json(
        {
            "queue": poison.queue,
            "routing_key": poison.routing_key,
            "message_id": poison.message_id,
            "headers": dict(poison.headers),
        }
    )
    step = poison.step
    run_id, state, seq, attempt = (
        (canonical_run_id(step.run_id), storable_text(step.state), step.seq, step.attempt)
        if step is not None
        else (None, None, None, None)
    )
    return storable_text(poison.reason), message, poison.fingerprint, run_id, state, seq, attempt, poison.body


def poison_fingerprint(queue: str, routing_key: str, message_id: str | None, body: bytes) -> str:
    """Identifies one poison message across redeliveries."""
    digest = hashlib.sha256()
    for part in (queue, routing_key, message_id or ""):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


def over_input(input: JSON, stored: JSON) -> JSON:
    """A run's data from a row whose ``data`` holds only what the run set over its
    input (Postgres, :func:`legato.store.postgres.rows.stored_data`): ``input || data``."""
    if isinstance(input, dict) and isinstance(stored, dict):
        return {**input, **stored}
    return stored


def run_from_row(
    row: Row, decode: Callable[[Any], Any] = lambda value: value, *, data_over_input: bool = False
) -> Run:
    """A run row as a Run; ``decode`` turns the JSON columns into values (SQLite
    keeps them as text, asyncpg's codec has decoded them). With
    ``data_over_input``, the ``data`` column holds only what the run set over its
    input (Postgres, :func:`legato.store.postgres.rows.stored_data`)."""
    input = decode(row["input"])
    data = decode(row["data"])
    if data_over_input:
        data = over_input(input, data)
    return run_from_columns(
        id=row["id"],
        workflow=row["workflow"],
        workflow_version=row["workflow_version"],
        status=row["status"],
        version=row["version"],
        priority=row["priority"],
        idempotency_key=row["idempotency_key"],
        input=input,
        data=data,
        machine=decode(row["machine"]),
        error=decode(row["error"]),
        trace_context=decode(row["trace_context"]),
        deadline=row["deadline"],
        sla_met=row["sla_met"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        search=decode(row["search"]),
    )


def dead_letter_from_columns(
    row: Row, decode: Callable[[Any], Any] = lambda value: value
) -> DeadLetterRecord:
    """A dead-letter row as a record; ``decode`` turns the JSON columns into
    values (SQLite keeps them as text, asyncpg's codec has decoded them)."""
    error = decode(row["error"])
    return DeadLetterRecord(
        id=row["id"],
        source=row["source"],
        run_id=row["run_id"],
        workflow=row["workflow"],
        state=row["state"],
        seq=row["seq"],
        attempt=row["attempt"],
        kind=row["kind"],
        reason=row["reason"],
        error=ErrorInfo.from_json(error) if error else None,
        attempts=row["attempts"],
        created_at=row["created_at"],
        status=row["status"],
        resolved_at=row["resolved_at"],
        resolved_by=row["resolved_by"],
        message=decode(row["message"]),
        body=bytes(row["body"]) if row["body"] is not None else None,
    )


def history_from_row(row: Row, decode: Callable[[Any], Any] = lambda value: value) -> HistoryEntry:
    """A history row as an entry, its kind a :class:`HistoryKind` again."""
    return HistoryEntry(
        run_id=row["run_id"],
        version=row["version"],
        idx=row["idx"],
        kind=HistoryKind(row["kind"]),
        at=row["at"],
        state=row["state"],
        attempt=row["attempt"],
        actor=row["actor"],
        detail=decode(row["detail"]),
    )


def due_timers(rows: Iterable[Row]) -> list[DueTimer]:
    """Claimed timer rows, their purposes :class:`TimerPurpose` again.

    A purpose this version does not know was written by a newer one (a rolling
    deploy): that timer is left out, so its claim runs out and a newer worker
    fires it, as with a run of a workflow version this worker lacks.
    """
    timers = []
    for row in rows:
        try:
            purpose = TimerPurpose(row["purpose"])
        except ValueError:
            log.warning(
                "timer %s of run %s has purpose %r, unknown to this version; left for a newer worker",
                row["key"],
                row["run_id"],
                row["purpose"],
            )
            continue
        timers.append(
            DueTimer(
                row["id"],
                row["run_id"],
                row["key"],
                purpose,
                row["seq"],
                row["attempt"],
                row["fire_at"],
                row["schedule"],
            )
        )
    return timers


def dead_letter_groups(rows: Iterable[Row], by: str) -> list[DeadLetterGroup]:
    """The failure patterns of the grouping query (``GROUP_DEAD_LETTERS``) of either dialect.

    Grouped ``by`` error, the query groups by error type and exact message; rows whose messages differ only
    in values (numbers, ids, quoted names: :func:`legato.patterns.error_pattern`)
    are one pattern here, with the newest sample. Most frequent first.
    """
    merged: dict[str, DeadLetterGroup] = {}
    for row in rows:
        key = failure_key(row["key"], row["detail"]) if by == "error" else row["key"]
        group = DeadLetterGroup(
            key,
            row["count"],
            row["first_seen"],
            row["last_seen"],
            row["sample_error"] or "",
            row["sample_id"],
        )
        seen = merged.get(key)
        merged[key] = group if seen is None else _merge(seen, group)
    return sorted(merged.values(), key=lambda g: (-g.count, -g.last_seen, -g.sample_id))


def _merge(a: DeadLetterGroup, b: DeadLetterGroup) -> DeadLetterGroup:
    newest = a if a.sample_id > b.sample_id else b
    return DeadLetterGroup(
        a.key,
        a.count + b.count,
        min(a.first_seen, b.first_seen),
        max(a.last_seen, b.last_seen),
        newest.sample_error,
        newest.sample_id,
    )
