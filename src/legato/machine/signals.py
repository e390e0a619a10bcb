"""Signals that arrive before the run waits for them.

A signal names an approval state's ``signal``. Sent while the run is not at
such a state, it is refused (``EarlySignal.REFUSE``) or kept with the run
(``EarlySignal.BUFFER``) and consumed the next time the run enters an approval
waiting for that name, in arrival order. A run keeps at most
``MAX_BUFFERED_SIGNALS``; a name no approval of the workflow waits for is
always refused, since nothing would ever consume it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from legato.machine.states import Approval
from legato.machine.values import JSON

if TYPE_CHECKING:
    from legato.machine.definition import Workflow

MAX_BUFFERED_SIGNALS = 100
"""Signals one run keeps waiting; past it, more are refused (a sender in a loop)."""


class EarlySignal(StrEnum):
    """What a signal does when the run is not waiting for it yet."""

    BUFFER = "buffer"
    REFUSE = "refuse"


@dataclass(frozen=True)
class BufferedSignal:
    """A signal kept with its run until an approval consumes it."""

    name: str
    data: Mapping[str, JSON]
    actor: str
    at: float

    def to_json(self) -> JSON:
        raw: dict[str, Any] = {"name": self.name, "actor": self.actor, "at": self.at}
        if self.data:
            raw["data"] = dict(self.data)
        return raw

    @classmethod
    def from_json(cls, raw: JSON) -> BufferedSignal:
        return cls(name=raw["name"], data=raw.get("data", {}), actor=raw["actor"], at=raw["at"])


def awaited_signals(workflow: Workflow) -> frozenset[str]:
    """Every signal name some approval of ``workflow`` (at any depth) waits for."""
    names = set()
    for name in workflow.state_names():
        state = workflow.state(name)
        if isinstance(state, Approval):
            names.add(state.signal)
    return frozenset(names)


def take_first(buffered: list[BufferedSignal], name: str) -> BufferedSignal | None:
    """Remove and return the oldest buffered signal called ``name``."""
    for index, signal in enumerate(buffered):
        if signal.name == name:
            return buffered.pop(index)
    return None
