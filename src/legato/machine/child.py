"""A child state: a run of another workflow, started by this one and waited for.

The child state's token is ``RUNNING`` while its child runs, as a task's is
while its handler runs; what differs is what starting and ending mean:

* Entering the state (or retrying it) is one ``StartChild`` command. The
  child's id and idempotency key are made from this run, the step (``seq``)
  and the attempt, so the store creates exactly one child per attempt in the
  transition's own transaction, however often anything is redelivered.
* The child reports its end with ``NotifyParent`` (an outbox message); the
  parent takes it as a :class:`~legato.machine.events.ChildEnded` event, which
  is accepted only while that token, attempt and kind still wait: so it is
  applied exactly once, like a step's result.
* When the parent ends or unwinds while the child runs, the child is
  cancelled (``CancelChild``) or left running, by the state's
  ``parent_close``. An unwinding parent waits for a cancelled child to end
  (the token drains), so a tree of runs cancels from the leaves up and ends.
* Unwinding the parent compensates a child that succeeded: a compensation
  token sends ``CompensateChild`` and waits for the child to report
  ``compensated``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from legato.machine.commands import CancelChild, CompensateChild, StartChild
from legato.machine.policies import ParentClose
from legato.machine.run import ParentLink, Phase, RunStatus, StepKind, Token
from legato.machine.states import Child
from legato.machine.values import JSON, lookup
from legato.machine.vocabulary import HistoryKind

if TYPE_CHECKING:
    from legato.machine.transition import Transition

CHILD_IDS = uuid.UUID("6c1d0e4e-5b7a-4f0a-9d38-0a1e3c7b2f51")
"""The uuid5 namespace of child run ids."""

UNDONE = frozenset({RunStatus.COMPENSATED, RunStatus.CANCELLED})
"""How a child asked to compensate may end for its parent's compensation to count as done."""


def child_run_id(parent: str, seq: int, attempt: int) -> str:
    """The id of the child run that attempt ``attempt`` of step ``seq`` of ``parent`` starts."""
    return str(uuid.uuid5(CHILD_IDS, f"{parent}:{seq}:{attempt}"))


def child_key(workflow: str, parent: str, seq: int, attempt: int) -> str:
    return f"{workflow}:child:{parent}:{seq}:{attempt}"


def child_state(tx: Transition, token: Token) -> Child | None:
    state = tx.workflow.state(token.state)
    return state if isinstance(state, Child) else None


def dispatch_child(tx: Transition, token: Token, state: Child) -> None:
    """Start the token's child (a step attempt), or compensate the child it names."""
    if token.kind is StepKind.COMPENSATION:
        assert token.child is not None, token
        link = ParentLink(tx.run.id, token.seq, token.attempt, StepKind.COMPENSATION)
        tx.commands.append(CompensateChild(token.child, link))
        return
    child = child_run_id(tx.run.id, token.seq, token.attempt)
    tx.put(replace(token, child=child))
    tx.commands.append(
        StartChild(
            token.seq,
            token.attempt,
            child,
            child_key(state.workflow, tx.run.id, token.seq, token.attempt),
            state.workflow,
            state.version,
            child_input(tx, token, state),
            tx.run.priority,
        )
    )
    tx.note(
        HistoryKind.CHILD_STARTED,
        token.state,
        token.attempt,
        seq=token.seq,
        child=child,
        workflow=state.workflow,
        version=state.version,
    )


def child_input(tx: Transition, token: Token, state: Child) -> dict[str, JSON]:
    """The child's input: the paths ``state.input`` names, or all of the step's data."""
    from legato.machine.map import scope_data

    scope: Mapping[str, JSON] = scope_data(tx, token)
    if state.input is None:
        return dict(scope)
    return {key: lookup(scope, path)[1] for key, path in state.input.items()}


def let_go(tx: Transition, token: Token, reason: str) -> bool:
    """This run stops waiting for ``token``'s child: cancel it or leave it running,
    by the state's ``parent_close``. True when it is cancelled (worth draining for)."""
    state = child_state(tx, token)
    if state is None or token.child is None or token.kind is not StepKind.STEP:
        return False
    if state.parent_close is ParentClose.LEAVE:
        tx.note(HistoryKind.CHILD_LEFT, token.state, token.attempt, seq=token.seq, child=token.child)
        return False
    tx.commands.append(CancelChild(token.child, reason))
    tx.note(
        HistoryKind.CHILD_CANCELLED,
        token.state,
        token.attempt,
        seq=token.seq,
        child=token.child,
        reason=reason,
    )
    return True


def let_go_all(tx: Transition, reason: str) -> None:
    """The run ends: every child still running (and not told already) is let go."""
    for token in list(tx.tokens.values()):
        if token.phase is Phase.RUNNING and not token.draining:
            let_go(tx, token, reason)


def is_waiting_child(tx: Transition, token: Token) -> bool:
    return token.kind is StepKind.STEP and child_state(tx, token) is not None
