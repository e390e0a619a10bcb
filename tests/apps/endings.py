"""One workflow per way a run can end and per recovery action tried on it
(tests/integration/test_recovery_table.py), so that ``dlq replay --all --workflow W``
reaches exactly one run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from legato import (
    App,
    Approval,
    OnDeadline,
    OnFailure,
    RetryPolicy,
    StepContext,
    Succeed,
    Task,
    Workflow,
)

FIXED: dict[str, bool] = {"handler": False}
"""Flipped by the test to 'deploy the fix' (the worker runs in the test's process)."""

ONCE = RetryPolicy.none()


async def done(ctx: StepContext) -> dict[str, Any]:
    return {f"{ctx.state}_done": True}


async def undo(ctx: StepContext) -> dict[str, Any]:
    return {f"{ctx.state}_undone": True}


async def broken(ctx: StepContext) -> dict[str, Any]:
    if not FIXED["handler"]:
        raise ValueError("bug in the handler")
    return {"fixed": True}


def failing(name: str, *, undo_first: bool = False, undo_failing: bool = False, **charge: Any) -> Workflow:
    """``first`` succeeds, then ``charge`` fails (until the fix is deployed)."""
    return Workflow(
        name,
        start="first",
        retry=ONCE,
        states={
            "first": Task(done, next="charge", compensate=undo if undo_first else None),
            "charge": Task(broken, compensate=undo if undo_failing else None, **charge),
        },
    )


def deadline(name: str) -> Workflow:
    """Waits for a signal that never comes, past its deadline."""
    return Workflow(
        name,
        start="wait",
        sla=0.5,
        on_deadline=OnDeadline.FAIL,
        states={"wait": Approval("go", next="end"), "end": Succeed()},
    )


ENDINGS: dict[str, Callable[[str], Workflow]] = {
    # Failed in a step, in a workflow without compensations.
    "failed": lambda name: failing(name),
    # Failed in a step before anything was undone, in a workflow with compensations.
    "failed_saga": lambda name: failing(name, undo_failing=True),
    "compensated": lambda name: failing(name, undo_first=True),
    "suspended": lambda name: failing(name, on_failure=OnFailure.SUSPEND),
    # Suspended, then cancelled by an operator.
    "cancelled": lambda name: failing(name, on_failure=OnFailure.SUSPEND),
    "timed_out": deadline,
}
ACTIONS = ("retry", "replay", "replay_all", "skip", "cancel", "resolve")


def workflow_name(ending: str, action: str) -> str:
    return f"{ending}-{action}"


app = App([make(workflow_name(ending, action)) for ending, make in ENDINGS.items() for action in ACTIONS])
