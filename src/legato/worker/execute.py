"""Calling a step handler: async inline, sync in a thread, bounded in time."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass

import anyio

from legato.app import ResolvedHandler
from legato.clock import Clock
from legato.context import StepContext
from legato.errors import NonRetryableError, RetryAfter
from legato.machine.errors import ErrorInfo, bound_traceback, type_name
from legato.machine.values import JSON, unstorable


class StepTimeout(Exception):
    """A step attempt ran past its ``timeout``; it counts as a failed attempt."""


class InvalidOutput(Exception):
    """A handler returned something that cannot be stored as run data."""


@dataclass(frozen=True)
class StepOutcome:
    """What one step attempt came to; the worker records it as the attempt's result.

    A middleware may return a changed copy (``dataclasses.replace(outcome,
    output=...)``); to fail an attempt it raises, as a handler would.
    """

    started_at: float
    finished_at: float
    output: JSON = None
    """What the handler returned: merged into the run's data (or stored under ``output_key``)."""
    error: ErrorInfo | None = None
    """Why the attempt failed; None when it succeeded."""
    retry_after: float | None = None
    """Retry after exactly this many seconds (:class:`RetryAfter`), instead of the policy's backoff."""
    non_retryable: bool = False
    """Skip the retries left (:class:`NonRetryableError`)."""

    @property
    def ok(self) -> bool:
        return self.error is None


def error_info(exc: BaseException) -> ErrorInfo:
    lineage = tuple(
        type_name(k)
        for k in type(exc).__mro__
        if issubclass(k, BaseException) and k not in (BaseException, object)
    )
    # Error text is stored too, and may quote anything: NUL becomes visible.
    text = "".join(traceback.format_exception(exc)).replace("\x00", "\\0")
    return ErrorInfo(type_name(type(exc)), str(exc).replace("\x00", "\\0"), bound_traceback(text), lineage)


async def invoke(
    handler: ResolvedHandler,
    ctx: StepContext,
    timeout: float | None,
    threads: anyio.CapacityLimiter,
    clock: Clock,
    output_key: str | None = None,
) -> StepOutcome:
    """Run the handler once and describe what happened.

    Cancellation (shutdown) is not an outcome: it propagates, and the caller
    returns the task to the queue.
    """
    started = clock.now()
    try:
        if timeout is None:
            output = await _call(handler, ctx, threads)
        else:
            with anyio.move_on_after(timeout) as scope:
                output = await _call(handler, ctx, threads)
        if timeout is not None and scope.cancelled_caught:
            timed_out = StepTimeout(
                f"attempt {ctx.attempt} of {ctx.state!r} ran past its timeout of {timeout}s"
            )
            return StepOutcome(started, clock.now(), error=error_info(timed_out))
        check_output(output, output_key)
    except Exception as exc:
        return failed(exc, started, clock.now())
    return StepOutcome(started, clock.now(), output=output)


def failed(exc: Exception, started: float, finished: float) -> StepOutcome:
    """The outcome of an attempt that raised ``exc``: :class:`RetryAfter` sets the
    delay, :class:`NonRetryableError` (and output that cannot be stored) skips
    the retries left, anything else is retried by the policy."""
    if isinstance(exc, RetryAfter):
        return StepOutcome(started, finished, error=error_info(exc), retry_after=exc.delay)
    if isinstance(exc, NonRetryableError | InvalidOutput):
        return StepOutcome(started, finished, error=error_info(exc), non_retryable=True)
    return StepOutcome(started, finished, error=error_info(exc))


async def _call(handler: ResolvedHandler, ctx: StepContext, threads: anyio.CapacityLimiter) -> JSON:
    if handler.is_async:
        return await handler.function(ctx)
    # abandon_on_cancel: a thread cannot be interrupted; on timeout we stop
    # waiting for it and the attempt counts as failed.
    return await anyio.to_thread.run_sync(handler.function, ctx, abandon_on_cancel=True, limiter=threads)


def check_output(output: JSON, output_key: str | None) -> None:
    """Raise :class:`InvalidOutput` when ``output`` cannot be stored as the step's result."""
    if output is None:
        return
    if output_key is None and not isinstance(output, Mapping):
        raise InvalidOutput(
            f"handler returned {type(output).__name__}; return a dict to merge into the run's data, "
            "or set output_key on the task to store any value"
        )
    problem = unstorable(output)
    if problem is not None:
        raise InvalidOutput(f"handler output cannot be stored: {problem}")
