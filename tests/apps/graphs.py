"""Workflows whose graphs are hard to draw: choices with long conditions, loops,
parallel branches of several steps, a map, an approval with a timeout."""

from __future__ import annotations

from legato import App, Approval, Branch, Choice, Fail, Field, Map, Parallel, Succeed, Task, Workflow
from legato.machine.states import Wait


async def step(ctx: object) -> None:
    return None


busy = Workflow(
    name="busy",
    start="intake",
    states={
        "intake": Task(step, next="triage"),
        "triage": Choice(
            [
                (Field("priority") == "urgent", "escalate"),
                (Field("amount") > 10_000, "review"),
                (Field("country") == "unknown", "lookup"),
            ],
            default="fanout",
        ),
        "lookup": Task(step, next="triage"),
        "escalate": Approval(signal="escalated", next="fanout", timeout=300, on_timeout="expired"),
        "review": Approval(signal="reviewed", next="fanout", timeout=600, on_timeout="expired"),
        "fanout": Parallel(
            branches=[
                Branch("reserve", {"reserve": Task(step, next="confirm"), "confirm": Task(step)}),
                Branch("charge", {"charge": Task(step, next="receipt"), "receipt": Task(step)}),
                Branch("notify", {"notify": Task(step)}),
            ],
            next="items",
        ),
        "items": Map(
            items="lines",
            iterator=Branch("pack", {"pack": Task(step, next="label"), "label": Task(step)}),
            next="settle",
        ),
        "settle": Choice([(Field("paid") == True, "done")], default="wait"),  # noqa: E712
        "wait": Wait(seconds=60, next="settle"),
        "done": Succeed(),
        "expired": Fail("Expired", "nobody answered in time"),
    },
)

app = App([busy])
