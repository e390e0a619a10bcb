"""Workflow definitions: a named, versioned state machine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from legato.machine.policies import DEFAULT_RETRY, OnDeadline, OnFailure, RetryPolicy
from legato.machine.schedules import Schedule
from legato.machine.states import Child, Map, Parallel, Placement, State, Step, Task, undoable
from legato.priority import Priority as Priority  # shared with the broker (legato/priority.py)

RESERVED_EVENT_PREFIX = "legato."


@dataclass(frozen=True)
class Workflow:
    """A workflow: states, the state to start in, and its policies.

    ``triggers`` are the event names (AMQP routing keys on ``legato.events``)
    that start a run. ``retry`` and ``on_failure`` are the defaults for task
    states that do not set their own. ``sla`` is a deadline in seconds from
    the start of a run; ``on_deadline`` says whether missing it only gets
    recorded or fails the run. ``retention`` is how long a finished run is
    kept before retention removes it (docs/retention.md).

    A ``Workflow`` validates itself when it is built: an instance that exists
    is a valid definition.
    """

    name: str
    start: str
    states: Mapping[str, State]
    version: int = 1
    triggers: tuple[str, ...] = ()
    retry: RetryPolicy = DEFAULT_RETRY
    on_failure: OnFailure = OnFailure.COMPENSATE
    sla: float | None = None
    on_deadline: OnDeadline = OnDeadline.RECORD
    priority: Priority = Priority.NORMAL
    description: str = ""
    retention: float | None = None
    """Seconds a finished run is kept (with its history) before retention
    removes it; None takes the configured default (docs/retention.md)."""
    search: Sequence[str] = ()
    """Search attributes: paths into the run's data (``"customer.id"``) whose
    values are indexed with the run, written by the transition that sets them;
    ``legato runs --where customer.id=42`` finds the run (docs/concepts.md)."""
    schedules: Sequence[Schedule] = ()
    """Clocks that start runs (``Cron(...)``, ``Every(...)``); a worker creates or
    updates them in the store when it starts (docs/events.md)."""
    _index: dict[str, Placement] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from legato.machine.validation import validate

        object.__setattr__(self, "triggers", tuple(self.triggers))
        object.__setattr__(self, "schedules", tuple(self.schedules))
        if isinstance(self.search, str):  # search="a.b": one path, not four letters
            object.__setattr__(self, "search", (self.search,))
        object.__setattr__(self, "search", tuple(self.search))
        object.__setattr__(self, "priority", Priority.parse(self.priority))
        object.__setattr__(self, "_index", validate(self))

    def placement(self, name: str) -> Placement:
        return self._index[name]

    def state(self, name: str) -> State:
        return self._index[name].state

    def task(self, name: str) -> Task:
        state = self._index[name].state
        if not isinstance(state, Task):
            raise TypeError(f"state {name!r} of {self.name!r} is not a task")
        return state

    def step(self, name: str) -> Step:
        """A state whose token runs something: a task, or a child state."""
        state = self._index[name].state
        if not isinstance(state, Task | Child):
            raise TypeError(f"state {name!r} of {self.name!r} is neither a task nor a child state")
        return state

    def children(self) -> Iterator[tuple[str, Child]]:
        """The child states, by name: the workflows this one starts runs of."""
        for name, placement in self._index.items():
            if isinstance(placement.state, Child):
                yield name, placement.state

    def state_names(self) -> Iterator[str]:
        return iter(self._index)

    def parallel(self, name: str) -> Parallel:
        state = self._index[name].state
        assert isinstance(state, Parallel)
        return state

    def map(self, name: str) -> Map:
        state = self._index[name].state
        assert isinstance(state, Map)
        return state

    @property
    def has_compensations(self) -> bool:
        return any(undoable(p.state) for p in self._index.values())

    def retry_for(self, task: Step, compensation: bool = False) -> RetryPolicy:
        if compensation and isinstance(task, Task):
            return task.compensate_retry or task.retry or self.retry
        return task.retry or self.retry

    def on_failure_for(self, task: Step) -> OnFailure:
        return task.on_failure or self.on_failure

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.version)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description: the shape the dashboard draws."""
        from legato.machine.graph import describe

        return describe(self)
