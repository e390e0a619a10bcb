"""Middleware around step execution.

A middleware is an async callable ``(call, call_next) -> Outcome``, composed
like ASGI: telemetry, metrics and limits wrap the handler without the worker
loop knowing about them. Every hook takes one dataclass, so fields can be
added without breaking anyone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from legato.app import ResolvedHandler
from legato.context import StepContext
from legato.machine.definition import Workflow
from legato.machine.run import Run
from legato.machine.states import Task
from legato.worker.execute import Outcome


@dataclass(frozen=True)
class StepCall:
    ctx: StepContext
    run: Run
    workflow: Workflow
    task: Task
    handler: ResolvedHandler
    headers: dict[str, object]
    """Headers of the task message (trace context travels here)."""


Next = Callable[[StepCall], Awaitable[Outcome]]


class Middleware(Protocol):
    async def __call__(self, call: StepCall, call_next: Next) -> Outcome:
        """Runs around every step attempt, before the outcome is recorded."""


def compose(middleware: Sequence[Middleware], final: Next) -> Next:
    """The first middleware is the outermost."""
    handler = final
    for layer in reversed(middleware):
        handler = _bind(layer, handler)
    return handler


def _bind(layer: Middleware, call_next: Next) -> Next:
    async def run(call: StepCall) -> Outcome:
        return await layer(call, call_next)

    return run
