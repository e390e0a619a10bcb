"""Hooks for whoever watches the engine (metrics, tracing, tests).

Each hook takes one value and returns nothing (except :meth:`Observer.message_headers`,
which adds to the messages of a transition); an observer overrides the hooks it
cares about. Hooks run inline on the hot path, so they must be cheap and must
not raise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from legato.machine.commands import Decision
from legato.machine.run import Run

_NO_HEADERS: Mapping[str, str] = {}


class Observer:
    def message_headers(self, run: Run) -> Mapping[str, str]:
        """Headers for the messages a transition of ``run`` publishes (trace context).

        Called before the transition is committed; the headers are stored with
        its outbox rows. Headers the caller of the engine gives win.
        """
        return _NO_HEADERS

    def applied(self, decision: Decision, created: bool) -> None:
        """A transition was committed (``created``: it started the run)."""

    def rejected(self, run: Run, event: str, reason: str) -> None:
        """An event was refused; the run did not change."""

    def conflict(self, run_id: str) -> None:
        """An optimistic-lock conflict: the run moved on, the decision is retried."""

    def poisoned(self, queue: str, reason: str) -> None:
        """A message could not be processed and was dead-lettered."""

    def rate_limit_waited(self, limit: str, seconds: float) -> None:
        """A step waited ``seconds`` for a token of the rate limit named ``limit``.

        Fires once per step attempt that had to wait, when the attempt is
        admitted (just before its handler), with its whole wait for that limit.
        """


class Observers(Observer):
    """Fan one hook call out to several observers."""

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self.observers = list(observers)

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)

    def message_headers(self, run: Run) -> Mapping[str, str]:
        merged: dict[str, str] = {}
        for observer in self.observers:
            merged.update(observer.message_headers(run))
        return merged

    def applied(self, decision: Decision, created: bool) -> None:
        for observer in self.observers:
            observer.applied(decision, created)

    def rejected(self, run: Run, event: str, reason: str) -> None:
        for observer in self.observers:
            observer.rejected(run, event, reason)

    def conflict(self, run_id: str) -> None:
        for observer in self.observers:
            observer.conflict(run_id)

    def poisoned(self, queue: str, reason: str) -> None:
        for observer in self.observers:
            observer.poisoned(queue, reason)

    def rate_limit_waited(self, limit: str, seconds: float) -> None:
        for observer in self.observers:
            observer.rate_limit_waited(limit, seconds)
