"""Workflows whose errors and data carry rich markup and terminal control
sequences: the CLI must print them, never obey them (tests/unit/test_cli_render.py)."""

from __future__ import annotations

from legato import App, Approval, NonRetryableError, StepContext, Task, Workflow

EVIL = (
    "[/] [red]x[/red] [link=http://evil.example]click[/link] "
    "\x1b[2J\x1b]8;;http://evil.example\x07osc\x1b]8;;\x07 \x9b31m \u202eflip"
)
"""Markup rich would parse (``[/]`` alone crashes it), CSI, OSC 8, BEL, a C1 CSI, a bidi override."""


async def explode(ctx: StepContext) -> None:
    raise NonRetryableError(EVIL)


hostile = Workflow("hostile", start="explode", states={"explode": Task(explode)})
waiting = Workflow("waiting", start="approve", states={"approve": Approval("approve", timeout=600)})

app = App([hostile, waiting])
