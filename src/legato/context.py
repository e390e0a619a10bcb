"""What a step handler receives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from legato.completion import CompleteLater, Promise, StepRef
from legato.interruption import Interruption
from legato.machine.run import StepKind
from legato.machine.values import JSON


class Beats(Protocol):
    def beat(self, details: Mapping[str, JSON] | None = None) -> None: ...


@dataclass(frozen=True)
class StepContext:
    """The step being run and the run's data (read-only).

    A handler returns a mapping to merge into the run's data (or the value to
    store under the task's ``output_key``), or ``None``.
    """

    run_id: str
    workflow: str
    workflow_version: int
    state: str
    seq: int
    attempt: int
    kind: StepKind
    data: Mapping[str, JSON]
    input: Mapping[str, JSON]
    priority: int
    interruption: Interruption | None = field(default=None, repr=False, compare=False)
    """Set by the worker: what ``cancelled`` reads."""
    heartbeat_details: Mapping[str, JSON] | None = None
    """What an earlier attempt of this step last reported through :meth:`heartbeat`
    (tasks with ``heartbeat_timeout``), to resume from; None on a first attempt."""
    lease: Beats | None = field(default=None, repr=False, compare=False)
    """Set by the worker for tasks with ``heartbeat_timeout``."""
    promise: Promise = field(default_factory=Promise, repr=False, compare=False)
    """What :meth:`complete_later` handed out."""

    def complete_later(self, timeout: float | None = None) -> str:
        """Hand this step's completion to an outside system; returns its token.

        The step is not done when the handler returns (it returns None, or the
        :class:`~legato.CompleteLater` this made): it is done when the token is
        completed or failed from outside (``legato complete`` / ``legato fail``,
        ``Client.complete`` / ``Client.fail``, ``POST /tokens/TOKEN/complete``),
        or fails with ``CompletionTimeout`` once ``timeout`` seconds pass (the
        retry policy applies). Calling it again returns the same token. If the
        handler raises, the token is never recorded and completing it is refused.
        """
        if self.promise.later is None:
            self.promise.later = CompleteLater(timeout, step=StepRef(self.run_id, self.seq, self.attempt))
        return self.promise.later.token

    def heartbeat(self, details: Mapping[str, JSON] | None = None) -> None:
        """Say the attempt is alive and, with ``details``, how far it got.

        For a task with ``heartbeat_timeout`` this extends the step's lease and
        keeps ``details`` (a JSON object) for a later attempt to resume from
        (``ctx.heartbeat_details``); for other tasks it does nothing. Any thread
        may call it; it does not block.
        """
        if self.lease is not None:
            self.lease.beat(details)

    @property
    def cancelled(self) -> bool:
        """True once the worker wants this attempt to stop: the run was cancelled
        or failed, or the step ran past its timeout. A sync handler checks it
        between pieces of work and returns (or raises) within the grace period;
        an async handler is cancelled where it awaits instead."""
        return self.interruption is not None and self.interruption.requested

    @property
    def idempotency_key(self) -> str:
        """Unique to this attempt: run id, step (state and visit) and attempt."""
        return f"{self.run_id}:{self.state}:{self.seq}:{self.kind.value}:{self.attempt}"

    @property
    def step_key(self) -> str:
        """The same for every attempt of this step visit.

        Give it to an external API as its idempotency key so that a retry after
        an ambiguous failure (a timeout) does not repeat the effect.
        """
        return f"{self.run_id}:{self.state}:{self.seq}:{self.kind.value}"

    @property
    def compensating(self) -> bool:
        return self.kind is StepKind.COMPENSATION
