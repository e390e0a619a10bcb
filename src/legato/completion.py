"""Completion from outside, the handler's side: :class:`CompleteLater`.

A handler that starts work somewhere else (a human task, a batch job, a
partner's API that calls back) returns ``CompleteLater``, or calls
``ctx.complete_later()``, and hands the token to that system. The step is not
done when the handler returns: it is done when the token is completed
(``legato complete TOKEN``, ``Client.complete``, ``POST /tokens/TOKEN/complete``)
or failed, or fails by itself when ``timeout`` passes (machine/completion.py).

The token is random (256 bits from :mod:`secrets`); the store keeps only its
SHA-256 (:func:`token_digest`), in the transaction that records the wait.
"""

from __future__ import annotations

import hashlib
import math
import secrets

TOKEN_PREFIX = "lct_"
"""Marks a legato completion token, so one pasted into the wrong place is recognised."""
TOKEN_BYTES = 32


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


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

    def __init__(self, timeout: float | None = None) -> None:
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                raise TypeError(f"CompleteLater timeout must be a number of seconds, not {timeout!r}")
            if not math.isfinite(timeout) or timeout <= 0:
                raise ValueError(
                    f"CompleteLater timeout must be a positive number of seconds, not {timeout!r}"
                )
        self.timeout = float(timeout) if timeout is not None else None
        self.token = new_token()

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
