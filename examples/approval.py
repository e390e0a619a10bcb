"""A refund over 100 needs a person's approval; without one in time it is escalated.
A cooling-off wait runs before the money moves.

    python -m examples.approval
"""

from __future__ import annotations

from typing import Any

import anyio

from examples._run import with_worker
from legato import App, Approval, Choice, Client, Field, Run, StepContext, Succeed, Task, Wait, Workflow
from legato.machine.run import Phase


async def pay_out(ctx: StepContext) -> dict[str, Any]:
    return {"paid": ctx.data["amount"]}


async def escalate(ctx: StepContext) -> dict[str, Any]:
    return {"escalated_to": "finance-leads"}


refund = Workflow(
    "refund",
    triggers=("refund.requested",),
    start="size",
    states={
        "size": Choice([(Field("amount") > 100, "approve")], default="cool_off"),
        "approve": Approval("approve", next="cool_off", timeout=0.5, on_timeout="escalate"),
        "escalate": Task(escalate, next="done"),
        "cool_off": Wait(seconds=0.1, next="pay"),
        "pay": Task(pay_out, next="done"),
        "done": Succeed(),
    },
)

app = App([refund])


async def scenario(client: Client) -> list[Run]:
    small = await client.start("refund", {"amount": 20})
    large = await client.start("refund", {"amount": 500})
    ignored = await client.start("refund", {"amount": 900})
    with anyio.fail_after(10):
        while not any(t.phase is Phase.AWAITING_SIGNAL for t in (await client.get(large.id)).tokens):
            await anyio.sleep(0.02)
    await client.signal(large.id, "approve", {"approved_by": "ops:maria"})
    return [await client.wait(r.id, timeout=30) for r in (small, large, ignored)]


def main() -> None:
    for run in anyio.run(with_worker, app, scenario):
        print(run.input["amount"], run.status.value, dict(run.data))


if __name__ == "__main__":
    main()
