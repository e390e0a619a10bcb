"""Several apps on one namespace: two apps, and an old and a new version of one.

``billing`` and ``shipping`` are different apps; ``shipping_v2`` is the next
deploy of ``shipping`` (same name, so the same queue), which adds the
``returns`` workflow. ``billing`` also has a workflow that always fails, for
the failure log lines.
"""

from __future__ import annotations

from typing import Any

from legato import App, RetryPolicy, StepContext, Succeed, Task, Workflow

QUICK = RetryPolicy(max_attempts=3, initial_delay=0.05, factor=2.0, max_delay=0.2, jitter=0.0)


async def done(ctx: StepContext) -> dict[str, Any]:
    return {"by": ctx.workflow, "version": ctx.workflow_version}


async def decline(ctx: StepContext) -> None:
    raise ConnectionError(f"card processor unavailable for card {ctx.data.get('card', '?')}")


def _one_step(
    name: str, event: str, version: int = 1, handler: Any = done, retry: RetryPolicy | None = None
) -> Workflow:
    return Workflow(
        name,
        version=version,
        triggers=(event,),
        start="work",
        states={"work": Task(handler, next="end", retry=retry), "end": Succeed()},
    )


billing = App(
    [_one_step("invoice", "invoice.due"), _one_step("charge", "card.charge", handler=decline, retry=QUICK)],
    name="billing",
)
shipping_v1 = App([_one_step("ship", "order.paid")], name="shipping")
shipping_v2 = App(
    [_one_step("ship", "order.paid", version=2), _one_step("returns", "order.returned")], name="shipping"
)
