"""An app with its own step middleware, for ``legato worker tests.apps.tenanted:app``.

The middleware logs a line per attempt naming the run's tenant, and stamps
the process that ran the step into the run's data.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from legato import App, Next, StepCall, StepContext, StepOutcome, Succeed, Task, Workflow

log = logging.getLogger("tests.apps.tenanted")


async def stamp(call: StepCall, call_next: Next) -> StepOutcome:
    log.info("tenant=%s step=%s attempt=%d", call.run.data.get("tenant"), call.ctx.state, call.ctx.attempt)
    outcome = await call_next(call)
    if not outcome.ok or not isinstance(outcome.output, dict):
        return outcome
    return dataclasses.replace(outcome, output={**outcome.output, "stamped_by": os.getpid()})


async def greet(ctx: StepContext) -> dict[str, Any]:
    return {"greeted": ctx.data["tenant"]}


app = App(
    [Workflow("greet", start="greet", states={"greet": Task(greet, next="done"), "done": Succeed()})],
    middleware=[stamp],
)
