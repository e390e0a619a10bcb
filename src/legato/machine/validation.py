"""Validation of a definition when it is registered.

Every problem is reported as a :class:`DefinitionError` naming the workflow
and the state, so that a bad deploy fails at start-up, not at 3 a.m.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from legato.errors import DefinitionError
from legato.machine.definition import RESERVED_EVENT_PREFIX
from legato.machine.limits import Limit, kind_of_limit
from legato.machine.policies import policy_problems
from legato.machine.schedules import schedule_problems
from legato.machine.search import paths_problem
from legato.machine.states import (
    Child,
    Choice,
    Fail,
    Map,
    Parallel,
    Placement,
    State,
    Succeed,
    Task,
    ends_scope,
    targets_of,
)

if TYPE_CHECKING:
    from legato.machine.definition import Workflow


def validate(workflow: Workflow) -> dict[str, Placement]:
    """Check ``workflow`` and return the index of every state by name."""
    name = workflow.name
    if not name or not isinstance(name, str) or name.strip() != name:
        raise DefinitionError(str(name), None, "a workflow needs a non-empty name without spaces")
    if not isinstance(workflow.version, int) or workflow.version < 1:
        raise DefinitionError(name, None, f"version must be an integer >= 1, got {workflow.version!r}")
    for event in workflow.triggers:
        if not event or not isinstance(event, str):
            raise DefinitionError(name, None, f"trigger event names must be non-empty, got {event!r}")
        if event.startswith(RESERVED_EVENT_PREFIX):
            raise DefinitionError(
                name, None, f"trigger {event!r} uses the reserved prefix {RESERVED_EVENT_PREFIX!r}"
            )
        if any(ch in event for ch in "*#"):
            raise DefinitionError(name, None, f"trigger {event!r} must be an exact event name")
    if len(set(workflow.triggers)) != len(workflow.triggers):
        raise DefinitionError(name, None, "a trigger is listed twice")
    problem = next(policy_problems("retry", workflow.retry), None)
    if problem is not None:
        raise DefinitionError(name, None, problem)
    if workflow.sla is not None and workflow.sla <= 0:
        raise DefinitionError(name, None, f"sla must be a positive number of seconds, got {workflow.sla}")
    if workflow.retention is not None and workflow.retention <= 0:
        raise DefinitionError(
            name, None, f"retention must be a positive number of seconds, got {workflow.retention}"
        )
    search = paths_problem(workflow.search)
    if search is not None:
        raise DefinitionError(name, None, search)
    for schedule, problem in schedule_problems(name, workflow.schedules):
        raise DefinitionError(name, None, f"schedule {schedule!r}: {problem}")

    index: dict[str, Placement] = {}
    _scope(workflow, workflow.start, workflow.states, None, None, index)
    _check_choice_cycles(workflow, index)
    return index


def _scope(
    workflow: Workflow,
    start: str,
    states: Mapping[str, State],
    parallel: str | None,
    branch: int | None,
    index: dict[str, Placement],
    in_map: str | None = None,
) -> None:
    wf = workflow.name
    if in_map is not None:
        where = f"the iterator of map {in_map!r}"
    else:
        where = "the workflow" if parallel is None else f"branch {branch} of {parallel!r}"
    if not states:
        raise DefinitionError(wf, parallel, f"{where} has no states")
    if start not in states:
        raise DefinitionError(wf, parallel, f"{where} starts at {start!r}, which is not one of its states")
    names = tuple(states)
    for state_name, state in states.items():
        if not isinstance(state_name, str) or not state_name:
            raise DefinitionError(wf, None, f"state names must be non-empty strings, got {state_name!r}")
        if state_name in index:
            raise DefinitionError(
                wf,
                state_name,
                "the state name is used twice; state names must be unique across the workflow, branches included",
            )
        index[state_name] = Placement(state, parallel, branch, names, in_map)
        _check_state(workflow, state_name, state, states)
        if in_map is not None:
            _check_iterator_state(wf, in_map, state_name, state)
    for state_name, state in states.items():
        if isinstance(state, Parallel):
            for number, inner in enumerate(state.branches):
                _scope(workflow, inner.start, inner.states, state_name, number, index)
        elif isinstance(state, Map):
            iterator = state.iterator
            _scope(workflow, iterator.start, iterator.states, state_name, 0, index, state_name)
            if not isinstance(iterator.states[iterator.start], Task | Child):
                raise DefinitionError(
                    wf, state_name, "a map's iterator must start with a task or a child state"
                )
    _check_reachability(wf, start, states, where)


def _check_iterator_state(wf: str, map_name: str, name: str, state: State) -> None:
    """An item's steps see the item, not the run: only tasks and their ends fit."""
    if not isinstance(state, Task | Child | Succeed | Fail):
        raise DefinitionError(
            wf, name, f"the iterator of map {map_name!r} can hold task, child, succeed and fail states only"
        )
    if isinstance(state, Task | Child) and state.on_failure is not None:
        raise DefinitionError(
            wf,
            name,
            f"on_failure has no meaning in the iterator of map {map_name!r}: "
            "an item that fails counts against the map's tolerated_failures",
        )


def _check_state(workflow: Workflow, name: str, state: State, scope: Mapping[str, State]) -> None:
    wf = workflow.name
    if not isinstance(state, State.__args__):
        raise DefinitionError(
            wf,
            name,
            f"{state!r} is not a state (use Task, Choice, Parallel, Map, Child, Wait, Approval, Succeed or Fail)",
        )
    problem = next(state.problems(), None)
    if problem is not None:
        raise DefinitionError(wf, name, problem)
    for target in targets_of(state):
        if target not in scope:
            hint = ""
            if target in workflow.states:
                hint = " (states inside a branch can only go to states of the same branch)"
            raise DefinitionError(wf, name, f"goes to unknown state {target!r}{hint}")


def check_limit_uses(workflow: Workflow, limits: Mapping[str, Limit]) -> None:
    """Every limit a task uses is declared, and of the right kind (checked at registration)."""
    for name in workflow.state_names():
        state = workflow.state(name)
        if not isinstance(state, Task):
            continue
        for use in state.limit_uses():
            limit = limits.get(use.name)
            if limit is None:
                known = ", ".join(sorted(limits)) or "none is declared"
                raise DefinitionError(
                    workflow.name,
                    name,
                    f"uses unknown {use.kind} limit {use.name!r} (declared: {known}); "
                    "declare it on the App: App(..., limits=[...])",
                )
            if not use.matches(limit):
                raise DefinitionError(
                    workflow.name,
                    name,
                    f"{use.kind}_limit {use.name!r} names a {kind_of_limit(limit)}",
                )


def check_children(workflow: Workflow, known: Mapping[str, Sequence[int]]) -> None:
    """Every child state names a workflow (and version) the app has (checked at registration).

    ``known`` is every registered workflow's versions, ``workflow`` included."""
    for name, state in workflow.children():
        versions = known.get(state.workflow)
        if not versions:
            names = ", ".join(sorted(known)) or "none"
            raise DefinitionError(
                workflow.name,
                name,
                f"starts a child run of unknown workflow {state.workflow!r} (registered: {names}); "
                "register the child's workflow first",
            )
        if state.version is not None and state.version not in versions:
            raise DefinitionError(
                workflow.name,
                name,
                f"starts a child run of {state.workflow!r} version {state.version}, "
                f"which is not registered (versions: {', '.join(map(str, sorted(versions)))})",
            )


def _check_reachability(wf: str, start: str, states: Mapping[str, State], where: str) -> None:
    reached = {start}
    queue = deque([start])
    while queue:
        for target in targets_of(states[queue.popleft()]):
            if target not in reached:
                reached.add(target)
                queue.append(target)
    for name in states:
        if name not in reached:
            raise DefinitionError(wf, name, f"unreachable: no path leads here from {start!r} in {where}")

    # Walk backwards from the states that can end the scope.
    predecessors: dict[str, set[str]] = {name: set() for name in states}
    for name, state in states.items():
        for target in targets_of(state):
            predecessors[target].add(name)
    finishing = {name for name, state in states.items() if ends_scope(state)}
    queue = deque(finishing)
    while queue:
        for before in predecessors[queue.popleft()]:
            if before not in finishing:
                finishing.add(before)
                queue.append(before)
    for name in states:
        if name not in finishing:
            raise DefinitionError(
                wf,
                name,
                f"no path from here to an end of {where} (a succeed or fail state, or a state without next)",
            )


def _check_choice_cycles(workflow: Workflow, index: Mapping[str, Placement]) -> None:
    """A loop made only of choices would spin forever inside one transition."""
    choices = {n: p.state for n, p in index.items() if isinstance(p.state, Choice)}
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str) -> None:
        visiting.add(name)
        for target in targets_of(choices[name]):
            if target in visiting:
                raise DefinitionError(
                    workflow.name,
                    name,
                    f"choices loop back to {target!r} without a step in between",
                )
            if target in choices and target not in done:
                visit(target)
        visiting.discard(name)
        done.add(name)

    for name in choices:
        if name not in done:
            visit(name)
