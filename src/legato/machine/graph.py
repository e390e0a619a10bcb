"""Definitions as graphs: a JSON shape for the dashboard, Mermaid for docs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from legato.machine.states import (
    Approval,
    Child,
    Choice,
    Map,
    Parallel,
    State,
    Task,
    Wait,
    handler_name,
    kind_of,
    targets_of,
)

if TYPE_CHECKING:
    from legato.machine.definition import Workflow


def describe(workflow: Workflow) -> dict[str, Any]:
    """Nodes and edges of the whole workflow, branches included."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for name in workflow.state_names():
        placement = workflow.placement(name)
        state = placement.state
        node: dict[str, Any] = {
            "id": name,
            "kind": kind_of(state),
            "parallel": placement.parallel,
            "branch": placement.branch,
        }
        node.update(_details(state))
        nodes.append(node)
        for target in targets_of(state):
            edges.append({"from": name, "to": target, "label": _label(state, target)})
        if isinstance(state, Parallel):
            for number, branch in enumerate(state.branches):
                edges.append({"from": name, "to": branch.start, "label": f"branch {number}"})
        if isinstance(state, Map):
            edges.append({"from": name, "to": state.iterator.start, "label": "each item"})
    return {
        "name": workflow.name,
        "version": workflow.version,
        "start": workflow.start,
        "triggers": list(workflow.triggers),
        "sla": workflow.sla,
        "nodes": nodes,
        "edges": edges,
        "mermaid": mermaid(workflow),
    }


def _details(state: State) -> dict[str, Any]:
    match state:
        case Task():
            return {
                "handler": handler_name(state.handler),
                "compensate": handler_name(state.compensate) if state.compensate else None,
                "timeout": state.timeout,
                "limits": [{"name": u.name, "key": u.key, "kind": u.kind} for u in state.limit_uses()],
            }
        case Approval():
            return {"signal": state.signal, "timeout": state.timeout}
        case Wait():
            return {"seconds": state.seconds, "until": state.until}
        case Child():
            return {
                "workflow": state.workflow,
                "version": state.version,
                "parent_close": state.parent_close.value,
            }
        case Map():
            return {
                "items": state.items,
                "max_concurrency": state.max_concurrency,
                "tolerated_failures": state.tolerated_failures,
            }
        case _:
            return {}


def _label(state: State, target: str) -> str:
    if isinstance(state, Choice):
        for rule in state.normalised_rules():
            if rule.next == target:
                return rule.condition.describe()
        return "default"
    if isinstance(state, Approval) and target == state.on_timeout:
        return "timeout"
    return ""


def mermaid(workflow: Workflow) -> str:
    """A Mermaid ``stateDiagram-v2`` of the workflow."""
    lines = ["stateDiagram-v2", f"    [*] --> {_id(workflow.start)}"]

    def scope(names: list[str], indent: str) -> None:
        for name in names:
            state = workflow.state(name)
            if isinstance(state, Parallel):
                lines.append(f"{indent}state {_id(name)} {{")
                for number, branch in enumerate(state.branches):
                    if number:
                        lines.append(f"{indent}    --")
                    lines.append(f"{indent}    [*] --> {_id(branch.start)}")
                    scope(list(branch.states), indent + "    ")
                lines.append(f"{indent}}}")
            if isinstance(state, Map):
                lines.append(f"{indent}state {_id(name)} {{")
                lines.append(f"{indent}    [*] --> {_id(state.iterator.start)}")
                scope(list(state.iterator.states), indent + "    ")
                lines.append(f"{indent}}}")
            for target in targets_of(state):
                label = _label(state, target)
                suffix = f" : {label}" if label else ""
                lines.append(f"{indent}{_id(name)} --> {_id(target)}{suffix}")
            if getattr(state, "next", "x") is None or kind_of(state) in ("succeed", "fail"):
                lines.append(f"{indent}{_id(name)} --> [*]")

    scope(list(workflow.states), "    ")
    return "\n".join(lines)


def _id(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
