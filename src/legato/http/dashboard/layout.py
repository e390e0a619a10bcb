"""A workflow's graph as the dashboard draws it.

The page lays the graph out with dagre (a layered layout library, vendored in
static/vendor/), so this only says *what* to draw: the states, and the edges
as the run moves along them. The branches of a parallel state, and the
iterator of a map, rejoin at the state's next state (dashed "join" edges), so
the picture reads like the run moves.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

_FAN_OUT = {"parallel": "branch", "map": "each item"}
"""The label prefix of the edges into a fan-out state's branches, by the state's kind."""


def drawable(description: dict[str, Any]) -> dict[str, Any]:
    """The nodes and edges of :meth:`Workflow.describe`, fan-outs rejoined."""
    return {"start": description["start"], "nodes": description["nodes"], "edges": _with_joins(description)}


def _with_joins(description: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace a fan-out state's edge to its next state by edges from the end of each branch."""
    nodes = {n["id"]: n for n in description["nodes"]}
    outgoing: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for edge in description["edges"]:
        outgoing[edge["from"]].append(edge)
    edges: list[dict[str, Any]] = []
    for edge in description["edges"]:
        source = nodes[edge["from"]]
        fan_out = _FAN_OUT.get(source["kind"])
        if fan_out is not None and not str(edge["label"]).startswith(fan_out):
            ends = [
                n["id"]
                for n in description["nodes"]
                if n["parallel"] == source["id"] and not outgoing[n["id"]] and n["kind"] != "fail"
            ]
            edges.extend({"from": end, "to": edge["to"], "label": "join", "join": True} for end in ends)
            if ends:
                continue
        edges.append({**edge, "join": False})
    return edges
