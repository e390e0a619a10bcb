"""Completing a step from outside: a completion token, to the transition it makes.

Shared by the client (``Client.complete`` / ``Client.fail``, so the CLI) and
the HTTP ingress (``POST /tokens/{token}/complete`` and ``/fail``). The token
names its step through its digest's row; the completion is then an event of
that run, applied by the engine under the run's optimistic lock like any
other, so of two completions (or a completion and the timeout) exactly one
wins, and the other is refused saying what became of the token.
"""

from __future__ import annotations

from datetime import UTC, datetime

import anyio

from legato.completion import StepRef, step_of, token_digest
from legato.engine import Engine
from legato.errors import CompletionTokenUsed, OperationRefused, RunNotFound, UnknownCompletionToken
from legato.machine.commands import Rejection
from legato.machine.errors import ErrorInfo
from legato.machine.events import CompletionReceived
from legato.machine.run import Phase, Run
from legato.machine.values import JSON
from legato.store.base import CompletionRecord
from legato.store.ports import CompletionStore

MAX_TOKEN_LENGTH = 200
"""Longer than any token legato makes (48 characters), short enough to refuse junk early."""

EXTERNAL_ERROR = "ExternalError"
"""The error type of a token failed without one."""

PATIENCE = 10.0
"""Seconds a completion waits for its step to record the token it handed out
(an outside system may answer before the worker has committed the wait)."""


async def settle_token(
    engine: Engine,
    store: CompletionStore,
    token: str,
    actor: str,
    *,
    output: JSON = None,
    error: ErrorInfo | None = None,
    non_retryable: bool = False,
    patience: float = PATIENCE,
) -> Run:
    """Complete (``error`` None) or fail the step waiting for ``token``; the run after it.

    Raises :class:`UnknownCompletionToken`, :class:`CompletionTokenUsed` (a
    second completion), or :class:`OperationRefused` (the run no longer waits:
    cancelled, failed, or moved on)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise UnknownCompletionToken()
    digest = token_digest(token)
    record = await store.find_completion(digest)
    if record is None:
        record = await _recorded(engine, store, digest, step_of(token), patience)
    if record.outcome is not None:
        raise CompletionTokenUsed(used(record))
    event = CompletionReceived(record.seq, record.attempt, actor, output, error, non_retryable)
    try:
        outcome = await engine.apply(record.run_id, event)
    except RunNotFound:
        raise UnknownCompletionToken() from None
    if isinstance(outcome, Rejection):
        # Lost a race? Then the token's row says to what.
        again = await store.find_completion(digest)
        if again is not None and again.outcome is not None:
            raise CompletionTokenUsed(used(again))
        raise OperationRefused(outcome.reason)
    return outcome.run


async def _recorded(
    engine: Engine, store: CompletionStore, digest: str, step: StepRef | None, patience: float
) -> CompletionRecord:
    """The token's row once the step it names has recorded it: its attempt may
    still be running (the handler returned, its result not committed yet)."""
    if step is None:
        raise UnknownCompletionToken()
    pause = 0.01
    with anyio.move_on_after(patience):
        while True:
            running = await _still_running(engine, step)
            record = await store.find_completion(digest)
            if record is not None:
                return record
            if not running:
                raise UnknownCompletionToken()
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.2)
    raise OperationRefused(
        f"step #{step.seq} attempt {step.attempt} of run {step.run_id} has not recorded its completion "
        f"token after {patience:g}s (its handler still runs?); try again later"
    )


async def _still_running(engine: Engine, step: StepRef) -> bool:
    run = await engine.store.load_run(step.run_id)
    token = run.token(step.seq) if run is not None else None
    return (
        run is not None
        and not run.finished
        and token is not None
        and token.phase is Phase.RUNNING
        and token.attempt == step.attempt
    )


def used(record: CompletionRecord) -> str:
    """Why a used token is refused, in words."""
    assert record.outcome is not None
    when = (
        datetime.fromtimestamp(record.settled_at, UTC).isoformat(timespec="seconds")
        if record.settled_at is not None
        else "an unknown time"
    )
    by = f" by {record.settled_by}" if record.settled_by else ""
    return (
        f"completion token already used: step {record.state!r} (#{record.seq}, attempt "
        f"{record.attempt}) of run {record.run_id} was {record.outcome.value.replace('_', ' ')} "
        f"at {when}{by}; a token is single-use"
    )
