"""The JSON the dashboard's page reads: runs, history, dead letters, graphs."""

from __future__ import annotations

from typing import Any

from legato.machine import recovery
from legato.machine.definition import Workflow
from legato.machine.map import progress as map_progress
from legato.machine.run import Phase, Run
from legato.machine.states import Approval
from legato.machine.vocabulary import PROGRESS, HistoryKind
from legato.store.base import HistoryEntry
from legato.store.insights import ErrorPattern, StatusCount, StepStats, Throughput
from legato.telemetry.context import root_context

_STUCK = recovery.STUCK_PHASES


def run_summary(run: Run) -> dict[str, Any]:
    end = run.finished_at
    return {
        "id": run.id,
        "workflow": run.workflow,
        "workflow_version": run.workflow_version,
        "status": run.status.value,
        "current_states": list(run.current_states),
        "version": run.version,
        "priority": run.priority,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "finished_at": end,
        "duration": (end - run.created_at) if end is not None else None,
        "sla_met": run.sla_met,
        "deadline": run.deadline,
        "error": run.error.to_json() if run.error else None,
    }


def run_detail(run: Run) -> dict[str, Any]:
    return {
        **run_summary(run),
        "input": run.input,
        "data": dict(run.data),
        "idempotency_key": run.idempotency_key,
        "trace_id": f"{root_context(run).trace_id:032x}",
        "tokens": [
            {
                "seq": t.seq,
                "state": t.state,
                "phase": t.phase.value,
                "kind": t.kind.value,
                "attempt": t.attempt,
                "since": t.since,
                "wake_at": t.wake_at,
                "error": t.error.to_json() if t.error else None,
            }
            for t in run.tokens
        ],
        "maps": map_progress(run),
        "parent": run.parent.run_id if run.parent is not None else None,
    }


def legal_actions(run: Run, workflow: Workflow | None) -> dict[str, Any]:
    """What an operator may do now; the engine has the last word on every action."""
    stuck = sorted({t.state for t in recovery.stuck(run)})
    signals: list[str] = []
    if workflow is not None:
        for token in run.tokens:
            if token.phase is Phase.AWAITING_SIGNAL:
                state = workflow.state(token.state)
                if isinstance(state, Approval) and state.signal not in signals:
                    signals.append(state.signal)
    refusal = recovery.stuck_at(run, None, "a retry")
    resumable = not isinstance(refusal, str)
    return {
        "retry": resumable,
        "skip": resumable,
        "why_not": refusal if isinstance(refusal, str) else None,
        "cancel": not run.finished,
        "pause": not run.finished and run.paused is None,
        "resume": not run.finished and run.paused is not None,
        "signal": signals,
        "stuck_states": stuck,
    }


def graph_marks(run: Run, history: list[HistoryEntry]) -> dict[str, list[str]]:
    """Which states to highlight: where the run is, where it has been, where it failed."""
    visited: list[str] = []
    for entry in history:
        if entry.state and entry.kind in PROGRESS and entry.state not in visited:
            visited.append(entry.state)
    current = [t.state for t in run.tokens if t.phase not in _STUCK]
    failed = [t.state for t in run.tokens if t.phase in _STUCK]
    if run.error is not None and not failed:
        failed = [e.state for e in history if e.kind is HistoryKind.DEAD_LETTERED and e.state][-1:]
    return {"current": current, "visited": visited, "failed": failed}


def overview_json(
    active: list[StatusCount],
    buckets: list[Throughput],
    steps: list[StepStats],
    errors: list[ErrorPattern],
) -> dict[str, Any]:
    """Status tiles, business figures per workflow, step and error tables."""
    statuses: dict[str, int] = {}
    for count in active:
        statuses[count.status] = statuses.get(count.status, 0) + count.count
    workflows: dict[str, dict[str, Any]] = {}
    for count in active:
        _workflow(workflows, count.workflow)["active"] += count.count
    for bucket in buckets:
        for status in ("succeeded", "failed", "compensated", "cancelled"):
            statuses[status] = statuses.get(status, 0) + getattr(bucket, status)
        entry = _workflow(workflows, bucket.workflow)
        entry["finished"] += bucket.finished
        entry["succeeded"] += bucket.succeeded
        entry["failed"] += bucket.failed + bucket.compensated
        entry["cancelled"] += bucket.cancelled
        entry["total_duration"] += bucket.total_duration
        entry["sla_met"] += bucket.sla_met
        entry["sla_missed"] += bucket.sla_missed
    for entry in workflows.values():
        finished = entry["finished"]
        judged = entry["sla_met"] + entry["sla_missed"]
        entry["failure_rate"] = entry["failed"] / finished if finished else None
        entry["avg_completion"] = entry["total_duration"] / finished if finished else None
        entry["sla_compliance"] = entry["sla_met"] / judged if judged else None
    return {
        "statuses": statuses,
        "workflows": [workflows[name] for name in sorted(workflows)],
        "throughput": [
            {
                "workflow": b.workflow,
                "bucket": b.bucket,
                "finished": b.finished,
                "succeeded": b.succeeded,
                "failed": b.failed + b.compensated,
                "cancelled": b.cancelled,
                "avg_completion": b.total_duration / b.finished if b.finished else None,
            }
            for b in buckets
        ],
        "steps": [
            {
                "workflow": s.workflow,
                "state": s.state,
                "kind": s.kind,
                "attempts": s.attempts,
                "succeeded": s.succeeded,
                "failed": s.failed,
                "success_rate": s.succeeded / s.attempts if s.attempts else None,
                "p50": s.p50,
                "p95": s.p95,
                "p99": s.p99,
            }
            for s in steps
        ],
        "errors": [
            {
                "workflow": e.workflow,
                "state": e.state,
                "error_type": e.error_type,
                "count": e.count,
                "first_seen": e.first_seen,
                "last_seen": e.last_seen,
                "pattern": e.pattern,
                "sample_message": e.sample_message,
                "sample_run": e.sample_run,
            }
            for e in errors
        ],
    }


def _workflow(found: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    if name not in found:
        found[name] = {
            "workflow": name,
            "active": 0,
            "finished": 0,
            "succeeded": 0,
            "failed": 0,
            "cancelled": 0,
            "total_duration": 0.0,
            "sla_met": 0,
            "sla_missed": 0,
        }
    return found[name]
