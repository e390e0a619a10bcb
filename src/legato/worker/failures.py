"""Every failed step attempt is a WARNING in the worker's log.

One line per failed attempt (of a step or of a compensation), with what
happens next: a retry and when, a dead letter, compensation, suspension.
The same fields are the record's structured keys (``extra``), which the
JSON log format (:mod:`legato.logs`) writes as keys of its own, so a log
shipper can alert on them without parsing the message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from legato.machine.commands import DeadLetter, Decision, HistoryRecord
from legato.machine.run import RunStatus
from legato.machine.vocabulary import HistoryKind
from legato.observe import AppliedInput, Observer

log = logging.getLogger("legato.worker.failures")

_FAILED = {HistoryKind.STEP_FAILED: "step", HistoryKind.COMPENSATION_FAILED: "compensation"}

_AFTER_GIVING_UP = {
    RunStatus.COMPENSATING: "compensation",
    RunStatus.SUSPENDED: "suspended",
    RunStatus.FAILED: "run failed",
    RunStatus.COMPENSATED: "run compensated",
    RunStatus.CANCELLED: "run cancelled",
}


class FailureLog(Observer):
    """Logs the failed attempts of every committed transition (an engine observer)."""

    def applied(self, applied: AppliedInput) -> None:
        decision = applied.decision
        for record in decision.history:
            kind = _FAILED.get(record.kind)
            if kind is not None:
                fields = failure_fields(decision, record, kind)
                log.warning(_message(fields), extra=fields)


def failure_fields(decision: Decision, record: HistoryRecord, kind: str) -> dict[str, Any]:
    """What the log line of one failed attempt says, as structured fields."""
    run = decision.run
    error = record.detail.get("error")
    error = error if isinstance(error, Mapping) else {}
    fields: dict[str, Any] = {
        "run_id": run.id,
        "workflow": run.workflow,
        "state": record.state,
        "step_kind": kind,
        "attempt": record.attempt,
        "error_type": str(error.get("type", "?")),
        "error_message": str(error.get("message", "")),
    }
    outcome = record.detail.get("outcome")
    delay = record.detail.get("delay")
    if outcome == "retry" and isinstance(delay, int | float):
        fields["next"] = "retry"
        fields["retry_at"] = datetime.fromtimestamp(record.at + delay, UTC).isoformat(timespec="milliseconds")
        return fields
    fields["outcome"] = str(outcome or "given up")
    if not any(isinstance(c, DeadLetter) and c.state == record.state for c in decision.commands):
        # A map item that failed for good (its map counts it), or an attempt that
        # ended while the run unwound: the outcome is the whole story.
        fields["next"] = fields["outcome"]
        return fields
    then = _AFTER_GIVING_UP.get(run.status)
    fields["next"] = f"dead letter, {then}" if then else "dead letter"
    return fields


def _message(fields: Mapping[str, Any]) -> str:
    kind = "compensation of " if fields["step_kind"] == "compensation" else ""
    head = (
        f"run {fields['run_id']}: {kind}{fields['workflow']}.{fields['state']} attempt {fields['attempt']} "
        f"failed: {fields['error_type']}: {fields['error_message']}"
    )
    if fields["next"] == "retry":
        return f"{head}; retry at {fields['retry_at']}"
    return f"{head}; next: {fields['next']}"
