"""The state graph, checked geometrically in the browser: dagre lays it out,
and no edge runs through a state it does not connect, and no labels overlap."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import anyio
from playwright.async_api import Browser, Page, expect

from legato import App
from legato.config import HttpSettings
from legato.demo.orders import orders
from legato.http.dashboard.serve import serve_dashboard
from legato.http.dashboard.service import Dashboard
from legato.store.insights import insights_for
from legato.store.postgres import PostgresStore
from tests.apps.graphs import busy
from tests.browser.pages import screenshot

# Every edge as segments, every state and label as a box, all in the SVG's coordinates.
GEOMETRY = """(workflow) => {
  const svg = document.querySelector(`[data-workflow="${workflow}"] svg`);
  const nodes = [...svg.querySelectorAll("g.node")].map((g) => {
    const [x, y] = g.getAttribute("transform").match(/-?[\\d.]+/g).map(Number);
    const rect = g.querySelector("rect");
    return { id: g.dataset.state, x, y, w: +rect.getAttribute("width"), h: +rect.getAttribute("height") };
  });
  const edges = [...svg.querySelectorAll("path.edge")].map((p) => ({
    from: p.dataset.from, to: p.dataset.to,
    points: (p.getAttribute("d").match(/-?[\\d.]+/g) || []).map(Number).reduce((acc, v, i, all) => (i % 2 ? acc : [...acc, [v, all[i + 1]]]), []),
  }));
  const labels = [...svg.querySelectorAll("text.edge-label")].map((t) => {
    const b = t.getBBox();
    return { text: t.textContent, x: b.x, y: b.y, w: b.width, h: b.height };
  });
  const width = +svg.getAttribute("width"), height = +svg.getAttribute("height");
  return { nodes, edges, labels, width, height };
}"""


def crosses(
    a: tuple[float, float], b: tuple[float, float], box: dict[str, float], margin: float = 1.0
) -> bool:
    """Whether segment a-b enters the box's interior (Liang-Barsky clipping)."""
    left, top = box["x"] + margin, box["y"] + margin
    right, bottom = box["x"] + box["w"] - margin, box["y"] + box["h"] - margin
    (x1, y1), (x2, y2) = a, b
    dx, dy = x2 - x1, y2 - y1
    low, high = 0.0, 1.0
    for p, q in ((-dx, x1 - left), (dx, right - x1), (-dy, y1 - top), (dy, bottom - y1)):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            low = max(low, t)
        else:
            high = min(high, t)
        if low > high:
            return False
    return True


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def problems(geometry: dict[str, Any]) -> list[str]:
    found = []
    for edge in geometry["edges"]:
        points = edge["points"]
        assert len(points) >= 2, edge
        for a, b in itertools.pairwise(points):
            for node in geometry["nodes"]:
                if node["id"] not in (edge["from"], edge["to"]) and crosses(a, b, node):
                    found.append(f"edge {edge['from']}->{edge['to']} crosses {node['id']} at {a}-{b}")
    labels = geometry["labels"]
    for i, label in enumerate(labels):
        for other in labels[i + 1 :]:
            if overlap(label, other):
                found.append(f"labels {label['text']!r} and {other['text']!r} overlap")
        for node in geometry["nodes"]:
            if overlap(label, node):
                found.append(f"label {label['text']!r} overlaps {node['id']}")
    for node in geometry["nodes"]:
        for other in geometry["nodes"]:
            if node is not other and overlap(node, other):
                found.append(f"states {node['id']} and {other['id']} overlap")
        inside = node["x"] >= 0 and node["y"] >= 0
        if (
            not inside
            or node["x"] + node["w"] > geometry["width"]
            or node["y"] + node["h"] > geometry["height"]
        ):
            found.append(f"state {node['id']} is outside the drawing")
    return found


@contextlib.asynccontextmanager
async def dashboard_only(pg_store: PostgresStore, app: App) -> AsyncIterator[str]:
    insights = insights_for(pg_store)
    await insights.open()
    try:
        async with anyio.create_task_group() as group:
            settings = HttpSettings(port=0)
            board = Dashboard(pg_store, insights, app, None, cache_seconds=0)
            _, port = await group.start(partial(serve_dashboard, board, settings, interval=0.2))
            yield f"http://127.0.0.1:{port}"
            group.cancel_scope.cancel()
    finally:
        await insights.close()


async def geometry_of(page: Page, workflow: str) -> dict[str, Any]:
    await expect(page.locator(f'[data-workflow="{workflow}"] svg g.node').first).to_be_visible()
    found: dict[str, Any] = await page.evaluate(GEOMETRY, workflow)
    return found


async def test_no_edge_crosses_a_state_and_no_labels_overlap(
    browser: Browser, pg_store: PostgresStore
) -> None:
    async with dashboard_only(pg_store, App([busy, orders])) as url:
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(f"{url}/#/workflows")
        for workflow in ("busy", "order"):
            geometry = await geometry_of(page, workflow)
            # Every state and every edge is drawn: parallel branches rejoin, the map's items rejoin.
            assert len(geometry["nodes"]) == (18 if workflow == "busy" else 9)
            pairs = {(e["from"], e["to"]) for e in geometry["edges"]}
            if workflow == "busy":
                assert {
                    ("label", "settle"),
                    ("notify", "items"),
                    ("lookup", "triage"),
                    ("wait", "settle"),
                } <= pairs
                assert len(geometry["labels"]) == 8
            assert problems(geometry) == []
        await screenshot(page, "dashboard-workflows")
        # dagre came from the package itself, and the page's security policy let everything run.
        assert errors == []


def test_the_check_finds_what_it_looks_for() -> None:
    """The geometry check itself: a crossing edge and overlapping labels are caught."""
    box = {"x": 10.0, "y": 10.0, "w": 20.0, "h": 10.0}
    geometry = {
        "nodes": [
            {"id": "a", "x": 0, "y": 0, "w": 5, "h": 5},
            {"id": "m", **box},
            {"id": "b", "x": 50, "y": 0, "w": 5, "h": 5},
        ],
        "edges": [{"from": "a", "to": "b", "points": [[5, 15], [50, 15]]}],
        "labels": [
            {"text": "x", "x": 0, "y": 30, "w": 10, "h": 5},
            {"text": "y", "x": 5, "y": 32, "w": 10, "h": 5},
        ],
        "width": 100,
        "height": 100,
    }
    assert problems(geometry) == [
        "edge a->b crosses m at [5, 15]-[50, 15]",
        "labels 'x' and 'y' overlap",
    ]
    assert not crosses((0, 5), (50, 5), box)
    assert not crosses((0, 10), (50, 10), box)  # along its border is not through it
