"""How a running step attempt is stopped before it ends by itself.

A run that is cancelled (or fails: its deadline, another step) no longer
wants the results of its running steps, and a step past its ``timeout`` has
failed. The worker then *interrupts* the attempt: an async handler's task is
cancelled at once (``CancelledError`` is raised where it awaits); a sync
handler, which a thread cannot be made to stop, sees ``ctx.cancelled`` turn
true and has a grace period to return before the worker stops waiting for it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio


class Interruption:
    """One attempt's stop switch: made per attempt by the worker, reached by the
    handler through ``ctx.cancelled``."""

    __slots__ = ("_requested", "_task", "cancelled_task", "kind", "reason", "timed_out")

    def __init__(self, kind: object = None) -> None:
        self.kind = kind
        """What the attempt runs (a step or a compensation), for whoever interrupts it."""
        self.reason: str | None = None
        """Why the attempt was interrupted; None while it was not."""
        self.timed_out = False
        self.cancelled_task = False
        """The handler's task was cancelled by :meth:`interrupt` (the caller uncancels it)."""
        self._task: asyncio.Task[Any] | None = None
        self._requested: anyio.Event | None = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def arm(self, task: asyncio.Task[Any]) -> None:
        """The attempt's async handler runs in ``task``: interrupting cancels it.

        A plain task cancel, not a cancel scope: a scope per attempt costs about
        ten microseconds, and interruptions are rare."""
        self._task = task
        if self.reason is not None:
            self._cancel()

    def disarm(self) -> None:
        self._task = None

    def _cancel(self) -> None:
        if self._task is not None and not self.cancelled_task:
            self.cancelled_task = True
            self._task.cancel(f"interrupted: {self.reason}")

    def event(self) -> anyio.Event:
        """Set when the attempt is interrupted (for the wait on a sync handler)."""
        if self._requested is None:
            self._requested = anyio.Event()
            if self.reason is not None:
                self._requested.set()
        return self._requested

    def interrupt(self, reason: str, timed_out: bool = False) -> None:
        """Stop the attempt (the first reason wins). Call it from the event loop's thread."""
        if self.reason is not None:
            return
        self.reason = reason
        self.timed_out = timed_out
        self._cancel()
        if self._requested is not None:
            self._requested.set()
