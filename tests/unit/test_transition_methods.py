"""``decide`` changes a transition only through ``Transition``'s methods, and
builds no run itself: the new run is assembled in one place."""

from __future__ import annotations

import ast
from pathlib import Path

DECIDE = Path(__file__).resolve().parents[2] / "src" / "legato" / "machine" / "decide.py"

_MUTATORS = {"append", "extend", "insert", "pop", "remove", "clear", "update", "add", "discard", "setdefault"}


def _shared(target: ast.expr) -> bool:
    """A field of another object (``tx.error``, ``tx.tokens[seq]``), not a local (``timing["x"]``)."""
    return isinstance(target, ast.Attribute) or (
        isinstance(target, ast.Subscript) and isinstance(target.value, ast.Attribute)
    )


def writes_outside_transition(source: str) -> list[str]:
    """Field writes, in-place changes of another object's fields, and runs built by hand."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        match node:
            case ast.Assign(targets=targets) | ast.Delete(targets=targets):
                found += [ast.unparse(t) for t in targets if _shared(t)]
            case ast.AugAssign(target=target) | ast.AnnAssign(target=target) if _shared(target):
                found.append(ast.unparse(target))
            case ast.Call(func=ast.Attribute(value=ast.Attribute() as owner, attr=method)) if (
                method in _MUTATORS
            ):
                found.append(f"{ast.unparse(owner)}.{method}(...)")
            case ast.Call(func=ast.Name(id="Run" | "Token")) | ast.Call(func=ast.Attribute(attr="evolve")):
                found.append(ast.unparse(node.func))
            case _:
                pass
    return sorted(found)


def test_decide_writes_no_field_of_a_transition_and_builds_no_run() -> None:
    assert writes_outside_transition(DECIDE.read_text()) == []


def test_the_check_sees_the_writes_it_forbids() -> None:
    source = """
tx.status = RunStatus.RUNNING
tx.compensated += 1
tx.completed.append(step)
tx.commands.append(ScheduleTimer(DEADLINE_TIMER, at, TimerPurpose.DEADLINE))
tx.tokens[seq] = token
run = Run(id=run_id)
new = tx.run.evolve(status=RunStatus.FAILED)
timing["waited"] = waited
"""
    assert writes_outside_transition(source) == [
        "Run",
        "tx.commands.append(...)",
        "tx.compensated",
        "tx.completed.append(...)",
        "tx.run.evolve",
        "tx.status",
        "tx.tokens[seq]",
    ]
