"""JSON shapes of runs, history lines, dead letters and schedules: one shape for
the CLI's ``--json``, the dashboard's API and the HTTP ingress."""

from __future__ import annotations

import base64
from typing import Any

from legato.machine.map import progress as map_progress
from legato.machine.run import Run
from legato.machine.schedules import schedule_to_json
from legato.store.base import DeadLetterGroup, DeadLetterRecord, HistoryEntry, StoredSchedule, TickRecord


def run_json(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "workflow": run.workflow,
        "workflow_version": run.workflow_version,
        "status": run.status.value,
        "version": run.version,
        "priority": run.priority,
        "current_states": list(run.current_states),
        "input": run.input,
        "data": dict(run.data),
        "error": run.error.to_json() if run.error else None,
        "idempotency_key": run.idempotency_key,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
        "deadline": run.deadline,
        "sla_met": run.sla_met,
        "tokens": [t.to_json() for t in run.tokens],
        "maps": map_progress(run),
        "paused": run.paused.to_json() if run.paused is not None else None,
        "parent": run.parent.to_json() if run.parent is not None else None,
        "search": dict(run.search) if run.search is not None else None,
    }


def history_json(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "version": entry.version,
        "idx": entry.idx,
        "kind": entry.kind.value,
        "at": entry.at,
        "state": entry.state,
        "attempt": entry.attempt,
        "actor": entry.actor,
        "detail": dict(entry.detail),
    }


def dead_letter_json(letter: DeadLetterRecord) -> dict[str, Any]:
    return {
        "id": letter.id,
        "source": letter.source,
        "run_id": letter.run_id,
        "workflow": letter.workflow,
        "state": letter.state,
        "seq": letter.seq,
        "attempt": letter.attempt,
        "kind": letter.kind,
        "reason": letter.reason,
        "error": letter.error.to_json() if letter.error else None,
        "attempts": letter.attempts,
        "created_at": letter.created_at,
        "status": letter.status,
        "resolved_at": letter.resolved_at,
        "resolved_by": letter.resolved_by,
        "message": message_json(letter),
    }


def message_json(letter: DeadLetterRecord) -> dict[str, Any] | None:
    """Where a poison message came from, and its body: as text when it is
    UTF-8, else base64 (``body_base64``); the record keeps the exact bytes."""
    if letter.message is None and letter.body is None:
        return None
    shown: dict[str, Any] = dict(letter.message or {})
    if letter.body is not None:
        try:
            shown["body"] = letter.body.decode("utf-8")
        except UnicodeDecodeError:
            shown["body_base64"] = base64.b64encode(letter.body).decode("ascii")
    return shown


def group_json(group: DeadLetterGroup) -> dict[str, Any]:
    return {
        "key": group.key,
        "count": group.count,
        "first_seen": group.first_seen,
        "last_seen": group.last_seen,
        "sample_error": group.sample_error,
        "sample_id": group.sample_id,
    }


def schedule_json(stored: StoredSchedule) -> dict[str, Any]:
    """A schedule; times in seconds since the epoch."""
    return {
        "name": stored.name,
        "workflow": stored.workflow,
        "spec": schedule_to_json(stored.schedule),
        "describe": stored.schedule.describe(),
        "input": dict(stored.schedule.input),
        "source": stored.source.value,
        "paused": stored.paused,
        "next_tick": stored.next_tick,
        "next_fire_at": stored.timer_at,
        "buffered": stored.buffered,
        "last_run_id": stored.last_run_id,
    }


def tick_json(tick: TickRecord) -> dict[str, Any]:
    """One line of a schedule's history."""
    return {
        "outcome": tick.outcome.value,
        "nominal": tick.nominal,
        "count": tick.count,
        "run_id": tick.run_id,
        "at": tick.at,
    }
