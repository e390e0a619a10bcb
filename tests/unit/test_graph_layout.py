"""Where the dashboard draws a workflow's states."""

from __future__ import annotations

import itertools

from legato import Choice, Field, Succeed, Task, Workflow
from legato.demo.orders import orders
from legato.http.dashboard.layout import NODE_HEIGHT, NODE_WIDTH, layout


async def step(ctx: object) -> None:
    return None


def columns(placed: dict[str, object]) -> dict[str, float]:
    return {n["id"]: n["x"] for n in placed["nodes"]}  # type: ignore[attr-defined]


def test_states_go_left_to_right_and_branches_rejoin() -> None:
    placed = layout(orders.describe())
    x = columns(placed)
    order = ["validate", "route", "review", "fulfil", "reserve", "ship", "done"]
    assert [x[a] < x[b] for a, b in itertools.pairwise(order)] == [True] * (len(order) - 1)
    assert x["reserve"] == x["charge"]
    joins = {(e["from"], e["to"]) for e in placed["edges"] if e["join"]}
    assert joins == {("reserve", "ship"), ("charge", "ship")}
    assert ("fulfil", "ship") not in {(e["from"], e["to"]) for e in placed["edges"]}
    # No two states overlap.
    boxes = [(n["x"], n["y"]) for n in placed["nodes"]]
    for i, (x1, y1) in enumerate(boxes):
        for x2, y2 in boxes[i + 1 :]:
            assert abs(x1 - x2) >= NODE_WIDTH or abs(y1 - y2) >= NODE_HEIGHT
    assert all(n["x"] + n["w"] <= placed["width"] for n in placed["nodes"])


def test_a_loop_is_drawn_back_underneath() -> None:
    retrying = Workflow(
        "poll",
        start="check",
        states={
            "check": Task(step, next="decide"),
            "decide": Choice([(Field("ready") == True, "done")], default="check"),  # noqa: E712
            "done": Succeed(),
        },
    )
    placed = layout(retrying.describe())
    [back] = [e for e in placed["edges"] if (e["from"], e["to"]) == ("decide", "check")]
    assert len(back["points"]) == 4
    assert min(p[1] for p in back["points"][1:3]) >= max(n["y"] + n["h"] for n in placed["nodes"])
    assert placed["height"] > back["points"][1][1]
