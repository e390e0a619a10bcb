"""JSON shapes of history lines and dead letters: one shape for the CLI's
``--json`` and the dashboard's API."""

from __future__ import annotations

from typing import Any

from legato.store.base import DeadLetterGroup, DeadLetterRecord, HistoryEntry


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
        "message": dict(letter.message) if letter.message else None,
    }


def group_json(group: DeadLetterGroup) -> dict[str, Any]:
    return {
        "key": group.key,
        "count": group.count,
        "first_seen": group.first_seen,
        "last_seen": group.last_seen,
        "sample_error": group.sample_error,
        "sample_id": group.sample_id,
    }
