"""Making child runs: the shell's half of a child state (machine/child.py).

The core only knows the workflow it decides for, so a decision that starts a
child run names it (``StartChild``) and this module makes the child's first
transition with the child's own workflow, placing the child in the parent's
trace. The store inserts the child with the parent's transition, in one
transaction; a child whose first state starts a child of its own is made here
too, down to :data:`MAX_DEPTH` levels.
"""

from __future__ import annotations

from dataclasses import replace

from legato.app import App
from legato.errors import DefinitionError
from legato.machine.commands import Decision, StartChild
from legato.machine.decide import start_run
from legato.machine.definition import Priority
from legato.machine.run import ParentLink
from legato.telemetry.context import trace_headers

MAX_DEPTH = 32
"""Child runs started in one transaction, each by the one before: past it, the
workflows start each other in a loop."""


def with_children(app: App, decision: Decision, now: float, depth: int = 0) -> Decision:
    """``decision`` with the first transitions of the child runs it starts."""
    starts = [c for c in decision.commands if isinstance(c, StartChild)]
    if not starts:
        return decision
    if depth >= MAX_DEPTH:
        raise DefinitionError(
            decision.run.workflow,
            None,
            f"more than {MAX_DEPTH} child runs start each other in one transition: the workflows loop",
        )
    # The child's root span is a child of the parent's: one trace for the tree.
    trace = trace_headers(decision.run)
    children = []
    for start in starts:
        workflow = app.workflow(start.workflow, start.version)
        child = start_run(
            workflow,
            start.child,
            start.input,
            now,
            idempotency_key=start.key,
            priority=Priority(start.priority),
            trace_context=trace,
            parent=ParentLink(decision.run.id, start.seq, start.attempt),
        )
        children.append(with_children(app, child, now, depth + 1))
    return replace(decision, children=tuple(children))
