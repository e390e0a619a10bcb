"""Calling a step handler: async inline, sync in a thread, bounded in time, interruptible."""

from __future__ import annotations

import asyncio
import math
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, replace

import anyio

from legato.app import ResolvedHandler
from legato.clock import Clock
from legato.completion import CompleteLater, StepRef, running_step
from legato.context import StepContext
from legato.errors import NonRetryableError, RetryAfter
from legato.interruption import Interruption
from legato.machine.errors import ErrorInfo, bound_traceback, type_name
from legato.machine.values import JSON, unstorable
from legato.redact import redact_text


class StepTimeout(Exception):
    """A step attempt ran past its ``timeout``; it counts as a failed attempt."""


class HandlerInterrupted(Exception):
    """The worker interrupted the attempt: its run was cancelled or failed meanwhile."""


INTERRUPT_GRACE = 5.0
"""Seconds a sync handler has to return once it is interrupted (``ctx.cancelled``)."""


class InvalidOutput(Exception):
    """A handler returned something that cannot be stored as run data."""


@dataclass(frozen=True)
class Deferral:
    """The attempt handed its completion to a token (:class:`~legato.CompleteLater`)."""

    digest: str
    """The token's SHA-256: what the store keeps of it."""
    timeout: float | None


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
    deferred: Deferral | None = None
    """Set when the handler returned ``CompleteLater``: the step ends when its token does."""

    @property
    def ok(self) -> bool:
        return self.error is None


def error_info(exc: BaseException) -> ErrorInfo:
    lineage = tuple(
        type_name(k)
        for k in type(exc).__mro__
        if issubclass(k, BaseException) and k not in (BaseException, object)
    )
    # Error text is stored too, and may quote anything: NUL becomes visible, and
    # a connection URL's password is masked (it would reach the dashboard and traces).
    text = redact_text("".join(traceback.format_exception(exc)).replace("\x00", "\\0"))
    message = redact_text(str(exc).replace("\x00", "\\0"))
    return ErrorInfo(type_name(type(exc)), message, bound_traceback(text), lineage)


async def invoke(
    handler: ResolvedHandler,
    ctx: StepContext,
    timeout: float | None,
    threads: anyio.CapacityLimiter,
    clock: Clock,
    output_key: str | None = None,
    grace: float = INTERRUPT_GRACE,
) -> StepOutcome:
    """Run the handler once and describe what happened.

    The attempt can be interrupted (``ctx.interruption``, legato/interruption.py):
    by its ``timeout``, or by the worker when the run no longer wants it. An
    interrupted attempt fails with :class:`StepTimeout` or
    :class:`HandlerInterrupted`, unless a sync handler returned within ``grace``
    of a run's interruption, which is then its outcome. Cancellation (shutdown)
    is not an outcome: it propagates, and the caller returns the task to the queue.
    """
    started = clock.now()
    stop = ctx.interruption
    if stop is None:
        stop = Interruption()
        ctx = replace(ctx, interruption=stop)
    try:
        with running_step(StepRef(ctx.run_id, ctx.seq, ctx.attempt)):
            if stop.requested:
                # Interrupted on its way here (its run ended): the handler does not
                # start. Arming would cancel the worker's own task, and a handler
                # that returns without awaiting would leave that cancel pending.
                output, stopped = None, True
            elif handler.is_async:
                output, stopped = await _call_async(handler, ctx, stop, timeout)
            else:
                output, stopped = await _call_sync(handler, ctx, threads, stop, timeout, grace)
        if stop.timed_out:
            timed_out = StepTimeout(
                f"attempt {ctx.attempt} of {ctx.state!r} ran past its timeout of {timeout}s"
            )
            return StepOutcome(started, clock.now(), error=error_info(timed_out))
        if stopped:
            interrupted = HandlerInterrupted(
                f"attempt {ctx.attempt} of {ctx.state!r} interrupted: {stop.reason}"
            )
            return StepOutcome(started, clock.now(), error=error_info(interrupted), non_retryable=True)
        later = handed_out(output, ctx)
        if later is not None:
            return StepOutcome(started, clock.now(), deferred=Deferral(later.digest, later.timeout))
        check_output(output, output_key)
    except Exception as exc:
        return failed(exc, started, clock.now())
    return StepOutcome(started, clock.now(), output=output)


async def _call_async(
    handler: ResolvedHandler, ctx: StepContext, stop: Interruption, timeout: float | None
) -> tuple[JSON, bool]:
    """Run an async handler; its interruption cancels its task. True if it did."""
    task = asyncio.current_task()
    assert task is not None
    stop.arm(task)
    try:
        if timeout is None:
            output = await handler.function(ctx)
        else:
            with anyio.move_on_after(timeout) as timer:
                output = await handler.function(ctx)
            if timer.cancelled_caught:
                stop.disarm()  # over already: nothing left to cancel
                stop.interrupt(f"ran past its timeout of {timeout}s", timed_out=True)
                return None, True
    except asyncio.CancelledError:
        if not stop.cancelled_task:
            raise  # shutdown, or a timeout's scope: not ours
        task.uncancel()
        return None, True
    finally:
        stop.disarm()
    if stop.cancelled_task:
        # The handler swallowed the cancellation and returned: its result stands.
        task.uncancel()
    return output, False


async def _call_sync(
    handler: ResolvedHandler,
    ctx: StepContext,
    threads: anyio.CapacityLimiter,
    stop: Interruption,
    timeout: float | None,
    grace: float,
) -> tuple[JSON, bool]:
    """Run a sync handler in a thread. When it is interrupted (or times out),
    ``ctx.cancelled`` turns true and the thread has ``grace`` seconds to return;
    then the worker stops waiting for it (a thread cannot be stopped: it is
    abandoned, and its result dropped). True if it was abandoned."""
    returned: list[JSON] = []
    raised: list[Exception] = []

    async def run() -> None:
        try:
            returned.append(
                await anyio.to_thread.run_sync(handler.function, ctx, abandon_on_cancel=True, limiter=threads)
            )
        except Exception as exc:
            raised.append(exc)
        group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.move_on_after(timeout if timeout is not None else math.inf) as timer:
            await stop.event().wait()
        if timer.cancelled_caught:
            stop.interrupt(f"ran past its timeout of {timeout}s", timed_out=True)
        await anyio.sleep(grace)
        group.cancel_scope.cancel()
    if raised:
        raise raised[0]
    if returned:
        return returned[0], False
    return None, True


def failed(exc: Exception, started: float, finished: float) -> StepOutcome:
    """The outcome of an attempt that raised ``exc``: :class:`RetryAfter` sets the
    delay, :class:`NonRetryableError` (and output that cannot be stored) skips
    the retries left, anything else is retried by the policy."""
    if isinstance(exc, RetryAfter):
        return StepOutcome(started, finished, error=error_info(exc), retry_after=exc.delay)
    if isinstance(exc, NonRetryableError | InvalidOutput):
        return StepOutcome(started, finished, error=error_info(exc), non_retryable=True)
    return StepOutcome(started, finished, error=error_info(exc))


def handed_out(output: JSON, ctx: StepContext) -> CompleteLater | None:
    """The token the attempt handed its completion to (returned, or made by
    ``ctx.complete_later()``); None when it completed here."""
    made = ctx.promise.later
    if isinstance(output, CompleteLater):
        if made is not None and output is not made:
            raise InvalidOutput(
                "handler returned a CompleteLater other than the one ctx.complete_later() made; "
                "return that one (or None)"
            )
        return output
    if made is not None and output is not None:
        raise InvalidOutput(
            "handler called ctx.complete_later() and returned output too; the step's output is "
            "what completes its token, so return None"
        )
    return made


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
