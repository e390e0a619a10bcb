"""An app whose worker processes die as they start (a broken deployment), for the
supervisor's give-up test. The supervisor itself, which loads the app to check
it, is not a child and lives."""

from __future__ import annotations

import os

from legato import App, StepContext, Task, Workflow
from legato.worker.supervisor import CHILD_INDEX

if os.environ.get(CHILD_INDEX) is not None:
    os._exit(3)


async def noop(ctx: StepContext) -> None:
    return None


app = App([Workflow("dying", start="a", states={"a": Task(noop)})])
