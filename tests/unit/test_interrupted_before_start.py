"""An attempt interrupted before its handler starts (its run ended while the step was
on its way): the handler does not run, and the worker's own task is left as it was."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import anyio
import pytest

from legato.app import ResolvedHandler
from legato.clock import SystemClock
from legato.context import StepContext
from legato.interruption import Interruption
from legato.machine.run import StepKind
from legato.worker.execute import invoke

RUN_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def interrupted_context() -> StepContext:
    stop = Interruption(StepKind.STEP)
    stop.interrupt("the run was cancelled")
    ctx = StepContext(RUN_ID, "w", 1, "charge", 1, 1, StepKind.STEP, {}, {}, 1)
    return replace(ctx, interruption=stop)


@pytest.mark.parametrize("is_async", [True, False])
async def test_the_handler_does_not_start_and_the_attempt_is_interrupted(is_async: bool) -> None:
    called: list[str] = []

    async def async_handler(ctx: StepContext) -> dict[str, Any]:
        called.append("async")
        return {"charged": True}  # returns without awaiting anything

    def sync_handler(ctx: StepContext) -> dict[str, Any]:
        called.append("sync")
        return {"charged": True}

    function = async_handler if is_async else sync_handler
    handler = ResolvedHandler("h", function, is_async)
    outcome = await invoke(handler, interrupted_context(), None, anyio.CapacityLimiter(1), SystemClock())
    assert called == []
    assert outcome.error is not None
    assert outcome.error.type == "legato.worker.execute.HandlerInterrupted"
    assert "the run was cancelled" in outcome.error.message
    assert outcome.non_retryable
    # No cancellation was left pending on the caller's task (the worker's runner):
    # before, the next await here raised CancelledError and the runner was gone.
    await asyncio.sleep(0)
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
