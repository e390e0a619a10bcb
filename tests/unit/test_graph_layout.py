"""What the dashboard draws of a workflow: its states and edges, fan-outs rejoined.

Where the states go is dagre's work in the page (tests/browser/test_graph.py
checks the drawing geometrically)."""

from __future__ import annotations

from typing import Any

from legato.demo.orders import orders
from legato.http.dashboard.layout import drawable
from tests.apps.graphs import busy


def pairs(graph: dict[str, Any], join: bool) -> set[tuple[str, str]]:
    return {(e["from"], e["to"]) for e in graph["edges"] if e["join"] is join}


def test_parallel_branches_rejoin_at_the_next_state() -> None:
    graph = drawable(orders.describe())
    assert pairs(graph, join=True) == {("reserve", "ship"), ("charge", "ship")}
    assert ("fulfil", "ship") not in pairs(graph, join=False)
    assert {("fulfil", "reserve"), ("fulfil", "charge")} <= pairs(graph, join=False)
    assert {n["id"] for n in graph["nodes"]} == set(orders.state_names())


def test_a_map_rejoins_from_the_end_of_its_iterator() -> None:
    graph = drawable(busy.describe())
    assert pairs(graph, join=True) == {
        ("confirm", "items"),
        ("receipt", "items"),
        ("notify", "items"),
        ("label", "settle"),
    }
    assert ("items", "settle") not in pairs(graph, join=False)
    assert ("items", "pack") in pairs(graph, join=False)
    # Loops stay as they are: the page lays them out.
    assert {("lookup", "triage"), ("wait", "settle")} <= pairs(graph, join=False)
