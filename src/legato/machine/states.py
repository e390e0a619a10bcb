"""The kinds of state a workflow is made of.

Each is a frozen value that says what is wrong with it (``problems()``, the
first to report first; validation names the first). Handlers may be given as
callables or as ``"module:function"`` strings; the core only ever uses their
names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from legato.machine.conditions import Condition
from legato.machine.limits import LimitUse, use_problems
from legato.machine.policies import OnFailure, ParentClose, RetryPolicy, policy_problems

Handler: TypeAlias = Callable[..., Any] | str


def handler_name(handler: Handler) -> str:
    """A stable, printable name for a handler."""
    if isinstance(handler, str):
        return handler
    module = getattr(handler, "__module__", "?")
    qualname = getattr(handler, "__qualname__", repr(handler))
    return f"{module}:{qualname}"


@dataclass(frozen=True)
class Task:
    """Runs a handler. ``next=None`` ends the workflow (or the branch).

    ``timeout`` bounds one attempt in seconds. ``compensate`` names the handler
    that undoes this step when a later failure unwinds the run (saga).
    ``output_key`` stores the handler's return value under that key instead of
    merging the returned mapping into the run's data.

    ``rate_limit`` and ``concurrency_limit`` name limits declared on the App
    (docs/flow-control.md); ``rate_key`` and ``concurrency_key`` are data paths
    whose value splits the limit into one bucket per value (per customer, say).
    Every attempt of the task, compensation included, goes through them.

    ``heartbeat_timeout`` makes a running attempt hold a lease in the store,
    renewed by its worker (and by ``ctx.heartbeat``): its broker delivery is
    settled as soon as the lease is held, so no broker timeout bounds the step,
    and if the worker dies the step is dispatched again once the lease has
    gone this long without renewal (docs/concepts.md, "Leases and heartbeats").
    """

    handler: Handler
    next: str | None = None
    retry: RetryPolicy | None = None
    timeout: float | None = None
    compensate: Handler | None = None
    compensate_retry: RetryPolicy | None = None
    on_failure: OnFailure | None = None
    output_key: str | None = None
    rate_limit: str | None = None
    rate_key: str | None = None
    concurrency_limit: str | None = None
    concurrency_key: str | None = None
    heartbeat_timeout: float | None = None

    def limit_uses(self) -> tuple[LimitUse, ...]:
        """The limits a step of this task passes, in the order it takes them."""
        uses = []
        if self.rate_limit is not None:
            uses.append(LimitUse(self.rate_limit, self.rate_key, "rate"))
        if self.concurrency_limit is not None:
            uses.append(LimitUse(self.concurrency_limit, self.concurrency_key, "concurrency"))
        return tuple(uses)

    def problems(self) -> Iterator[str]:
        if not self.handler:
            yield "a task needs a handler"
        if self.timeout is not None and self.timeout <= 0:
            yield f"timeout must be positive, got {self.timeout}"
        if self.heartbeat_timeout is not None and self.heartbeat_timeout <= 0:
            yield f"heartbeat_timeout must be positive, got {self.heartbeat_timeout}"
        for label, policy in (("retry", self.retry), ("compensate_retry", self.compensate_retry)):
            if policy is not None:
                yield from policy_problems(label, policy)
        if self.compensate_retry is not None and self.compensate is None:
            yield "compensate_retry is set but there is no compensate handler"
        yield from use_problems("rate", self.rate_limit, self.rate_key)
        yield from use_problems("concurrency", self.concurrency_limit, self.concurrency_key)


@dataclass(frozen=True)
class Child:
    """Starts a run of the workflow ``workflow`` (its newest version, or ``version``)
    as a child of this run, and waits for it to end.

    ``input`` maps the child's input keys to data paths of this run (a map
    item's paths start at its own data: ``item.sku``); without it the child
    gets all of this run's data (or the item's). The child is created in the
    same transaction as the transition that enters this state, with a key made
    of this run, the step and the attempt, so there is one child per attempt
    however often anything is redelivered.

    When the child succeeds, its data is this step's output: merged into this
    run's data, or stored under ``output_key``. When it fails, is cancelled or
    compensated, the step failed: ``retry`` (else the workflow's policy)
    starts a new child, a new attempt with its own key, and past it
    ``on_failure`` decides, as for a task.

    ``parent_close`` says what happens to a running child when this run is
    cancelled, fails or unwinds: cancel it (the default) or leave it running.
    With ``compensate`` (the default), unwinding this run compensates a child
    that succeeded, through the child's own compensations.
    """

    workflow: str
    next: str | None = None
    version: int | None = None
    input: Mapping[str, str] | None = None
    output_key: str | None = None
    retry: RetryPolicy | None = None
    on_failure: OnFailure | None = None
    parent_close: ParentClose = ParentClose.CANCEL
    compensate: bool = True

    def problems(self) -> Iterator[str]:
        if not isinstance(self.workflow, str) or not self.workflow:
            yield f"a child state needs the name of a workflow, got {self.workflow!r}"
        if self.version is not None and (
            isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1
        ):
            yield f"version must be an integer >= 1, got {self.version!r}"
        for key, path in (self.input or {}).items():
            if not isinstance(key, str) or not key:
                yield f"input keys must be non-empty strings, got {key!r}"
            elif not isinstance(path, str) or not _is_path(path):
                yield f"input {key!r} must be a data path such as 'order.lines', got {path!r}"
        if self.retry is not None:
            yield from policy_problems("retry", self.retry)
        if self.parent_close not in tuple(ParentClose):
            yield f"parent_close must be a ParentClose, got {self.parent_close!r}"


@dataclass(frozen=True)
class Rule:
    """One branch of a choice: go to ``next`` when ``condition`` holds."""

    condition: Condition
    next: str


@dataclass(frozen=True)
class Choice:
    """Branches on the run's data. Rules are tried in order; ``default`` is required."""

    rules: Sequence[Rule | tuple[Condition, str]]
    default: str | None = None

    def normalised_rules(self) -> tuple[Rule, ...]:
        return tuple(rule if isinstance(rule, Rule) else Rule(*rule) for rule in self.rules)

    def problems(self) -> Iterator[str]:
        if not self.default:
            yield "a choice needs a default state"
        for rule in self.normalised_rules():
            if not hasattr(rule.condition, "holds"):
                yield f"rule condition {rule.condition!r} is not a Condition (build it with Field)"


@dataclass(frozen=True)
class Branch:
    """One branch of a parallel state: a small state machine of its own."""

    start: str
    states: Mapping[str, State]


@dataclass(frozen=True)
class Parallel:
    """Fans out into every branch; joins, then goes to ``next``, when all are done."""

    branches: Sequence[Branch]
    next: str | None = None

    def problems(self) -> Iterator[str]:
        if not self.branches:
            yield "a parallel state needs at least one branch"


MAX_MAP_CONCURRENCY = 1000
"""A map starts up to ``max_concurrency`` items in one transition, so this bounds
the size of that transaction (its task messages and history lines)."""


@dataclass(frozen=True)
class Map:
    """Runs ``iterator`` once for every item of the list at the data path ``items``.

    Each item's steps see ``{"item": ..., "index": ...}`` plus what the item's
    earlier steps returned, not the run's data; an item's result is what its
    steps returned, merged. When every item has finished, the results are
    stored under ``output_key`` as a list in item order, and the run goes on.

    At most ``max_concurrency`` items run at a time. ``tolerated_failures`` is a
    count (an ``int``) or a fraction of the items (a ``float`` in [0, 1]); one
    failure more and the map fails: no new item starts, the running ones
    finish, and the run follows its failure path (compensating the items that
    completed, most recent first). An item fails when its step fails for good
    after the retries of its own task's policy, or when it reaches a fail state.
    """

    items: str
    iterator: Branch
    next: str | None = None
    max_concurrency: int = 10
    tolerated_failures: int | float = 0
    output_key: str = "results"

    def problems(self) -> Iterator[str]:
        if not isinstance(self.items, str) or not _is_path(self.items):
            yield f"items must be a data path such as 'order.lines', got {self.items!r}"
        if (
            isinstance(self.max_concurrency, bool)
            or not isinstance(self.max_concurrency, int)
            or not 1 <= self.max_concurrency <= MAX_MAP_CONCURRENCY
        ):
            yield (
                f"max_concurrency must be an integer from 1 to {MAX_MAP_CONCURRENCY}, "
                f"got {self.max_concurrency!r}"
            )
        yield from _tolerance_problems(self.tolerated_failures)
        if not isinstance(self.output_key, str) or not self.output_key:
            yield f"output_key must be a non-empty key, got {self.output_key!r}"


def _is_path(path: str) -> bool:
    return bool(path) and all(part.strip() == part and part for part in path.split("."))


def _tolerance_problems(tolerated: object) -> Iterator[str]:
    if isinstance(tolerated, bool) or not isinstance(tolerated, int | float):
        yield f"tolerated_failures must be a count (int) or a fraction (float), got {tolerated!r}"
    elif isinstance(tolerated, int) and tolerated < 0:
        yield f"tolerated_failures must be >= 0, got {tolerated}"
    elif isinstance(tolerated, float) and not 0.0 <= tolerated <= 1.0:
        yield f"tolerated_failures as a fraction must be in [0, 1], got {tolerated}"


def tolerated(state: Map, total: int) -> int:
    """How many of ``total`` items may fail before the map fails."""
    if isinstance(state.tolerated_failures, float):
        return int(state.tolerated_failures * total)
    return state.tolerated_failures


@dataclass(frozen=True)
class Wait:
    """Pauses for ``seconds``, or until the timestamp found at the data path ``until``."""

    seconds: float | None = None
    until: str | None = None
    next: str | None = None

    def problems(self) -> Iterator[str]:
        if (self.seconds is None) == (self.until is None):
            yield "a wait needs exactly one of seconds or until"
        if self.seconds is not None and self.seconds < 0:
            yield f"wait seconds must be >= 0, got {self.seconds}"


@dataclass(frozen=True)
class Approval:
    """A manual intervention point: waits for the signal ``signal``.

    With ``timeout``, the run goes to ``on_timeout`` if no signal comes in time
    (or fails, when ``on_timeout`` is not set).
    """

    signal: str
    next: str | None = None
    timeout: float | None = None
    on_timeout: str | None = None

    def problems(self) -> Iterator[str]:
        if not self.signal:
            yield "an approval needs the name of the signal it waits for"
        if self.timeout is not None and self.timeout <= 0:
            yield f"timeout must be positive, got {self.timeout}"
        if self.on_timeout is not None and self.timeout is None:
            yield "on_timeout is set but there is no timeout"


@dataclass(frozen=True)
class Succeed:
    """Ends the workflow (or the branch) successfully."""

    def problems(self) -> Iterator[str]:
        return iter(())


@dataclass(frozen=True)
class Fail:
    """Ends the workflow as failed, with an error type and a cause."""

    error: str = "WorkflowFailed"
    cause: str = ""

    def problems(self) -> Iterator[str]:
        return iter(())


State: TypeAlias = Task | Choice | Parallel | Map | Child | Wait | Approval | Succeed | Fail

Step: TypeAlias = Task | Child
"""A state whose token runs something and reports back: a task's handler, or a child run."""


def undoable(state: State) -> bool:
    """True when unwinding a run undoes this state's completed steps: a task with a
    compensation, or a child state that compensates its child."""
    if isinstance(state, Task):
        return state.compensate is not None
    return isinstance(state, Child) and state.compensate


KIND_NAMES: dict[type[Any], str] = {
    Task: "task",
    Choice: "choice",
    Parallel: "parallel",
    Map: "map",
    Child: "child",
    Wait: "wait",
    Approval: "approval",
    Succeed: "succeed",
    Fail: "fail",
}


def kind_of(state: State) -> str:
    return KIND_NAMES[type(state)]


def targets_of(state: State) -> list[str]:
    """The states this one can go to next, in its own scope."""
    found: list[str] = []
    match state:
        case Task(next=nxt) | Parallel(next=nxt) | Map(next=nxt) | Child(next=nxt) | Wait(next=nxt):
            if nxt is not None:
                found.append(nxt)
        case Approval(next=nxt, on_timeout=timeout_target):
            found.extend(t for t in (nxt, timeout_target) if t is not None)
        case Choice():
            found.extend(rule.next for rule in state.normalised_rules())
            if state.default:
                found.append(state.default)
        case _:
            pass
    return found


def ends_scope(state: State) -> bool:
    """True when this state can finish its scope (the workflow or a branch)."""
    match state:
        case Succeed() | Fail():
            return True
        case (
            Task(next=None)
            | Parallel(next=None)
            | Map(next=None)
            | Child(next=None)
            | Wait(next=None)
            | Approval(next=None)
        ):
            return True
        case _:
            return False


@dataclass(frozen=True)
class Placement:
    """Where a state sits: top level, or inside branch ``branch`` of ``parallel``.

    A map's iterator is its branch 0; ``map`` then names the map."""

    state: State
    parallel: str | None = None
    branch: int | None = None
    scope_states: tuple[str, ...] = field(default=())
    map: str | None = None
