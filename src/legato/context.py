"""What a step handler receives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from legato.machine.run import StepKind
from legato.machine.values import JSON


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
