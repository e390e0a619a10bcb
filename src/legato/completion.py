"""Completion from outside, the handler's side: :class:`CompleteLater`.

A handler that starts work somewhere else (a human task, a batch job, a
partner's API that calls back) returns ``CompleteLater``, or calls
``ctx.complete_later()``, and hands the token to that system. The step is not
done when the handler returns: it is done when the token is completed
(``legato complete TOKEN``, ``Client.complete``, ``POST /tokens/TOKEN/complete``)
or failed, or fails by itself when ``timeout`` passes (machine/completion.py).

The token is unguessable (256 random bits from :mod:`secrets`); the store
keeps only its SHA-256 (:func:`token_digest`), in the transaction that records
the wait. A token made inside a handler also names its step (run id, visit,
attempt: ``lct.<run>.<seq>.<attempt>.<random>``), so a completion that comes
back before the worker has committed the wait -- an outside system answering
at once -- is held until it is (legato/outside.py) instead of being refused
as unknown. Naming the step gives nothing away that completes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import secrets
from collections.abc import Iterator
from contextvars import ContextVar
from typing import NamedTuple

TOKEN_PREFIX = "lct."
"""Marks a legato completion token, so one pasted into the wrong place is recognised."""
TOKEN_BYTES = 32


class StepRef(NamedTuple):
    """The step attempt a token belongs to."""

    run_id: str
    seq: int
    attempt: int


_STEP: ContextVar[StepRef | None] = ContextVar("legato_step", default=None)
"""The attempt whose handler runs in this context (set by the worker; a sync
handler's thread runs in a copy of it)."""


@contextlib.contextmanager
def running_step(step: StepRef) -> Iterator[None]:
    """Mark the context as running ``step``'s handler: tokens made in it name the step."""
    reset = _STEP.set(step)
    try:
        yield
    finally:
        _STEP.reset(reset)


def new_token(step: StepRef | None = None) -> str:
    secret = secrets.token_urlsafe(TOKEN_BYTES)
    if step is None:
        return f"{TOKEN_PREFIX}{secret}"
    return f"{TOKEN_PREFIX}{step.run_id}.{step.seq}.{step.attempt}.{secret}"


def step_of(token: str) -> StepRef | None:
    """The step a token names, if it names one (and looks like a token at all)."""
    parts = token.split(".")
    if len(parts) != 5 or f"{parts[0]}." != TOKEN_PREFIX:
        return None
    _, run_id, seq, attempt, _ = parts
    if not (seq.isdigit() and attempt.isdigit()) or len(seq) > 9 or len(attempt) > 9:
        return None
    return StepRef(run_id, int(seq), int(attempt))


def token_digest(token: str) -> str:
    """What the store keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class CompleteLater:
    """Returned by a handler: its step completes when :attr:`token` is completed from outside.

    ``timeout`` (seconds) bounds the wait: past it the attempt fails with
    ``CompletionTimeout`` and the task's retry policy decides what follows (a
    retry runs the handler again, which issues a new token). Without it the
    run waits as long as it takes.
    """

    __slots__ = ("timeout", "token")

    def __init__(self, timeout: float | None = None, *, step: StepRef | None = None) -> None:
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                raise TypeError(f"CompleteLater timeout must be a number of seconds, not {timeout!r}")
            if not math.isfinite(timeout) or timeout <= 0:
                raise ValueError(
                    f"CompleteLater timeout must be a positive number of seconds, not {timeout!r}"
                )
        self.timeout = float(timeout) if timeout is not None else None
        self.token = new_token(step or _STEP.get())

    @property
    def digest(self) -> str:
        return token_digest(self.token)

    def __repr__(self) -> str:
        # The token is a credential: never in logs.
        return f"CompleteLater(timeout={self.timeout!r})"


class Promise:
    """Set by ``ctx.complete_later()``: the token the attempt handed out, if any."""

    __slots__ = ("later",)

    def __init__(self) -> None:
        self.later: CompleteLater | None = None
