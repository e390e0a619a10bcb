"""Middleware around step execution: the public hook for your own cross-cutting code.

A middleware is an async callable ``(call, call_next) -> StepOutcome``,
composed like ASGI. It runs around every step and compensation attempt that
runs its handler -- once the attempt is admitted by the flow-control limits,
right before the handler -- and returns the attempt's outcome, which the
worker then records. Every hook takes one dataclass (:class:`StepCall`), so
fields can be added without breaking anyone.

Install yours on the app: ``App([...], middleware=[tenant_logs])``. The order
around a handler, outermost first (docs/middleware.md says why):

1. telemetry (tracing, then metrics), installed by ``legato worker``;
2. the app's middleware, the first listed outermost;
3. the handler (its ``timeout`` bounds the handler alone).

An exception a middleware raises counts as the attempt's failure, exactly as
if the handler had raised it (retried by the policy; :class:`RetryAfter` and
:class:`NonRetryableError` are honoured); cancellation (shutdown) propagates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from legato.app import ResolvedHandler
from legato.clock import Clock
from legato.context import StepContext
from legato.machine.definition import Workflow
from legato.machine.run import Run
from legato.machine.states import Task
from legato.worker.execute import InvalidOutput, StepOutcome, check_output, error_info, failed


@dataclass(frozen=True)
class StepCall:
    """One step attempt about to run: what a middleware sees.

    Pass it on unchanged, or a changed copy (``dataclasses.replace(call,
    ctx=...)``) to change what the layers inside and the handler see.
    """

    ctx: StepContext
    """What the handler receives: run id, workflow, state, attempt, the run's data."""
    run: Run
    """The run as it was loaded for this attempt."""
    workflow: Workflow
    """The definition (the run's version) the step belongs to."""
    task: Task
    """The task state being run (handler, timeout, retry policy, limits)."""
    handler: ResolvedHandler
    """The function that will run (``handler.name`` is its dotted name)."""
    headers: dict[str, object]
    """Headers of the task message (trace context travels here)."""


Next = Callable[[StepCall], Awaitable[StepOutcome]]
"""The rest of the chain: the middleware inside this one, then the handler."""


class Middleware(Protocol):
    async def __call__(self, call: StepCall, call_next: Next) -> StepOutcome:
        """Runs around every step and compensation attempt that runs its handler.

        Call ``await call_next(call)`` at most once to run the rest (a handler
        that raised arrives as a failed :class:`StepOutcome`, not as an
        exception), and return its outcome, a changed copy, or an outcome of
        your own without calling it. Raise to fail the attempt.
        """


def compose(middleware: Sequence[Middleware], final: Next) -> Next:
    """The first middleware is the outermost."""
    handler = final
    for layer in reversed(middleware):
        handler = _bind(layer, handler)
    return handler


def _bind(layer: Middleware, call_next: Next) -> Next:
    async def run(call: StepCall) -> StepOutcome:
        return await layer(call, call_next)

    return run


class AppMiddleware:
    """The app's middleware as one layer, whose errors become the attempt's failure.

    The boundary sits between telemetry and the app's middleware, so traces
    and metrics report the outcome that is recorded, whatever the app's
    middleware did to it. Inside the app's stack an exception propagates as
    usual (an outer middleware can catch what an inner one raised); only what
    escapes the outermost becomes a failed outcome here. Output a middleware
    put in is checked like a handler's: output that cannot be stored fails the
    attempt instead of the commit. Every output is checked, the handler's too:
    a middleware may have changed it in place.
    """

    def __init__(self, layers: Sequence[Middleware], clock: Clock) -> None:
        self.layers = tuple(layers)
        self.clock = clock
        self._bound: tuple[Next, Next] | None = None

    async def __call__(self, call: StepCall, call_next: Next) -> StepOutcome:
        started = self.clock.now()
        try:
            outcome = await self._chain(call_next)(call)
        except Exception as exc:
            return failed(exc, started, self.clock.now())
        if outcome.ok:
            try:
                check_output(outcome.output, call.task.output_key)
            except InvalidOutput as exc:
                return replace(outcome, output=None, error=error_info(exc), non_retryable=True)
        return outcome

    def _chain(self, call_next: Next) -> Next:
        # A worker always passes the same call_next: compose once, not per attempt.
        bound = self._bound
        if bound is None or bound[0] is not call_next:
            bound = self._bound = (call_next, compose(self.layers, call_next))
        return bound[1]


def with_app_middleware(
    telemetry: Sequence[Middleware], app_layers: Sequence[Middleware], clock: Clock
) -> list[Middleware]:
    """The whole chain of a worker: telemetry outside, the app's middleware inside."""
    if not app_layers:
        return list(telemetry)
    return [*telemetry, AppMiddleware(app_layers, clock)]
