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

from legato.completion import token_digest
from legato.engine import Engine
from legato.errors import CompletionTokenUsed, OperationRefused, RunNotFound, UnknownCompletionToken
from legato.machine.commands import Rejection
from legato.machine.errors import ErrorInfo
from legato.machine.events import CompletionReceived
from legato.machine.run import Run
from legato.machine.values import JSON
from legato.store.base import CompletionRecord
from legato.store.ports import CompletionStore

MAX_TOKEN_LENGTH = 200
"""Longer than any token legato makes (48 characters), short enough to refuse junk early."""

EXTERNAL_ERROR = "ExternalError"
"""The error type of a token failed without one."""


async def settle_token(
    engine: Engine,
    store: CompletionStore,
    token: str,
    actor: str,
    *,
    output: JSON = None,
    error: ErrorInfo | None = None,
    non_retryable: bool = False,
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
        raise UnknownCompletionToken()
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
