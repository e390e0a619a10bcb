"""A workflow started every second by a schedule: the schedule tests' worker processes run it."""

from __future__ import annotations

from typing import Any

from legato import App, Every, Overlap, StepContext, Succeed, Task, Workflow


async def note(ctx: StepContext) -> dict[str, Any]:
    return {"noted": ctx.data.get("n", 0)}


app = App()
app.register(
    Workflow(
        "ticking",
        start="note",
        states={"note": Task(note, next="done"), "done": Succeed()},
        schedules=[
            Every(1, name="every-second", input={"n": 1}, overlap=Overlap.ALLOW_ALL, catch_up_window=3600)
        ],
    )
)
