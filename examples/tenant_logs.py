"""Step middleware: every log line a step writes names the tenant it works for.

The middleware reads the tenant from the run's data and puts it in a
context variable for the length of the attempt; a logging filter copies it
onto every record. Handlers log as usual, async or sync (a sync handler runs
in a thread, and the context goes with it).

python -m examples.tenant_logs
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

import anyio

from examples._run import with_worker
from legato import App, Client, Next, Run, StepCall, StepContext, StepOutcome, Succeed, Task, Workflow

TENANT: ContextVar[str] = ContextVar("tenant", default="-")

log = logging.getLogger("examples.billing")


async def tenant_logs(call: StepCall, call_next: Next) -> StepOutcome:
    """Runs around every attempt: the tenant is set while the handler runs."""
    token = TENANT.set(str(call.run.data.get("tenant", "-")))
    try:
        return await call_next(call)
    finally:
        TENANT.reset(token)


class TenantFilter(logging.Filter):
    """Adds ``tenant`` to every record, for a format such as ``%(tenant)s %(message)s``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.tenant = TENANT.get()
        return True


async def invoice(ctx: StepContext) -> dict[str, Any]:
    log.info("invoicing %s for %s", ctx.data["amount"], ctx.data["order"])
    return {"invoiced": True}


def mail(ctx: StepContext) -> dict[str, Any]:  # sync: runs in a thread
    log.info("mailing the invoice for %s", ctx.data["order"])
    return {"mailed": True}


billing = Workflow(
    "billing",
    start="invoice",
    states={
        "invoice": Task(invoice, next="mail"),
        "mail": Task(mail, next="done"),
        "done": Succeed(),
    },
)

app = App([billing], middleware=[tenant_logs])


async def scenario(client: Client) -> list[Run]:
    runs = [
        await client.start("billing", {"tenant": "acme", "order": "A-1", "amount": 120}),
        await client.start("billing", {"tenant": "globex", "order": "G-7", "amount": 35}),
    ]
    return [await client.wait(r.id, timeout=30) for r in runs]


def main() -> None:
    handler = logging.StreamHandler()
    handler.addFilter(TenantFilter())
    handler.setFormatter(logging.Formatter("%(tenant)-7s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    for run in anyio.run(with_worker, app, scenario):
        print(run.data["tenant"], run.status.value)


if __name__ == "__main__":
    main()
