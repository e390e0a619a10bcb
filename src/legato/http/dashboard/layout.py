"""Placing a workflow's states on a page: a small layered (Sugiyama-style) layout.

States go left to right by their longest distance from the start; loops are
drawn back underneath. The branches of a parallel state rejoin at its next
state (dashed "join" edges), so the picture reads like the run moves. The
page only draws what this returns.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from typing import Any

NODE_WIDTH = 140
NODE_HEIGHT = 46
GAP_X = 60
GAP_Y = 26
MARGIN = 16
SWEEPS = 4


def layout(description: dict[str, Any]) -> dict[str, Any]:
    """Coordinates for the nodes and points for the edges of :meth:`Workflow.describe`."""
    names = [n["id"] for n in description["nodes"]]
    edges = _with_joins(description)
    successors: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        successors[edge["from"]].append(edge["to"])
    order, back = _depth_first(description["start"], names, successors)
    layer = _layers(names, edges, back, order)
    rows = _ordered_rows(layer, edges, back, order)

    tallest = max((len(row) for row in rows.values()), default=1)
    height = tallest * NODE_HEIGHT + (tallest - 1) * GAP_Y
    position: dict[str, tuple[float, float]] = {}
    for column, row in rows.items():
        used = len(row) * NODE_HEIGHT + (len(row) - 1) * GAP_Y
        top = MARGIN + (height - used) / 2
        for index, name in enumerate(row):
            position[name] = (MARGIN + column * (NODE_WIDTH + GAP_X), top + index * (NODE_HEIGHT + GAP_Y))

    bottom = MARGIN + height
    loops = 0
    placed_edges = []
    for edge in edges:
        (x1, y1), (x2, y2) = position[edge["from"]], position[edge["to"]]
        if (edge["from"], edge["to"]) in back or layer[edge["to"]] <= layer[edge["from"]]:
            loops += 1
            below = bottom + 14 * loops
            points = [
                (x1 + NODE_WIDTH / 2, y1 + NODE_HEIGHT),
                (x1 + NODE_WIDTH / 2, below),
                (x2 + NODE_WIDTH / 2, below),
                (x2 + NODE_WIDTH / 2, y2 + NODE_HEIGHT),
            ]
        else:
            points = [(x1 + NODE_WIDTH, y1 + NODE_HEIGHT / 2), (x2, y2 + NODE_HEIGHT / 2)]
        placed_edges.append({**edge, "points": [[round(x, 1), round(y, 1)] for x, y in points]})

    nodes = [
        {
            **node,
            "x": position[node["id"]][0],
            "y": round(position[node["id"]][1], 1),
            "w": NODE_WIDTH,
            "h": NODE_HEIGHT,
        }
        for node in description["nodes"]
    ]
    width = MARGIN * 2 + (max(rows, default=0) + 1) * (NODE_WIDTH + GAP_X) - GAP_X
    return {"nodes": nodes, "edges": placed_edges, "width": width, "height": bottom + 14 * loops + MARGIN}


def _with_joins(description: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace a parallel state's edge to its next state by edges from the end of each branch."""
    nodes = {n["id"]: n for n in description["nodes"]}
    outgoing: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for edge in description["edges"]:
        outgoing[edge["from"]].append(edge)
    edges: list[dict[str, Any]] = []
    for edge in description["edges"]:
        source = nodes[edge["from"]]
        if source["kind"] == "parallel" and not str(edge["label"]).startswith("branch"):
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


def _depth_first(
    start: str, names: list[str], successors: dict[str, list[str]]
) -> tuple[list[str], set[tuple[str, str]]]:
    """Discovery order, and the edges that close a loop."""
    order: list[str] = []
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(name: str) -> None:
        state[name] = 1
        order.append(name)
        for target in successors[name]:
            if state.get(target) == 1:
                back.add((name, target))
            elif target not in state:
                visit(target)
        state[name] = 2

    for root in [start, *names]:
        if root not in state:
            visit(root)
    return order, back


def _layers(
    names: list[str], edges: list[dict[str, Any]], back: set[tuple[str, str]], order: list[str]
) -> dict[str, int]:
    layer = dict.fromkeys(names, 0)
    forward = [
        (e["from"], e["to"]) for e in edges if (e["from"], e["to"]) not in back and e["from"] != e["to"]
    ]
    # Longest path on the acyclic rest: relax in discovery order until stable.
    for _ in range(len(names)):
        changed = False
        for source, target in forward:
            if layer[target] < layer[source] + 1:
                layer[target] = layer[source] + 1
                changed = True
        if not changed:
            break
    return layer


def _ordered_rows(
    layer: dict[str, int], edges: list[dict[str, Any]], back: set[tuple[str, str]], order: list[str]
) -> dict[int, list[str]]:
    rows: dict[int, list[str]] = defaultdict(list)
    for name in order:
        rows[layer[name]].append(name)
    parents: dict[str, list[str]] = defaultdict(list)
    children: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        if (edge["from"], edge["to"]) not in back:
            parents[edge["to"]].append(edge["from"])
            children[edge["from"]].append(edge["to"])
    columns = sorted(rows)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        for column in columns if downward else reversed(columns):
            neighbours = parents if downward else children
            rank = {name: i for c in rows.values() for i, name in enumerate(c)}
            rows[column] = sorted(rows[column], key=partial(_barycenter, rank, neighbours, rows[column]))
    return dict(rows)


def _barycenter(rank: dict[str, int], neighbours: dict[str, list[str]], row: list[str], name: str) -> float:
    """Where a state's neighbours sit on average; states without any keep their place."""
    found = [rank[n] for n in neighbours[name] if n in rank]
    return sum(found) / len(found) if found else float(row.index(name))
