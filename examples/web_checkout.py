"""A web shop's checkout endpoint starts a run of a workflow and answers with its result.

The aiohttp app opens one legato client for its whole life (``legato.connect``,
from LEGATO_DATABASE_URL / LEGATO_BROKER_URL like a worker), and every request
starts a run keyed by the order id, so a client retrying its POST never pays
twice. A ``legato worker examples.web_checkout:app`` runs the steps:

    legato worker examples.web_checkout:app &
    python -m examples.web_checkout                # http://127.0.0.1:8080
    curl -X POST localhost:8080/checkout/A1 -d '{"amount": 30}'
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

import legato
from legato import App, NonRetryableError, StepContext, Succeed, Task, Workflow


async def charge(ctx: StepContext) -> dict[str, Any]:
    amount = ctx.data["amount"]
    if amount <= 0:
        raise NonRetryableError(f"cannot charge {amount}")
    return {"charged": amount, "receipt": f"R-{ctx.step_key[:8]}"}


checkout = Workflow(
    "checkout",
    start="charge",
    states={"charge": Task(charge, next="done", timeout=10), "done": Succeed()},
)

app = App([checkout])

CLIENT = web.AppKey("legato", legato.Client)


async def place_order(request: web.Request) -> web.Response:
    body = await request.json()
    order = request.match_info["order"]
    client = request.app[CLIENT]
    run = await client.start("checkout", {"order": order, "amount": body["amount"]}, key=f"order:{order}")
    try:
        done = await client.result(run.id, timeout=10)
    except TimeoutError:
        return web.json_response({"run": run.id, "status": "pending"}, status=202)
    if done.status is not legato.RunStatus.SUCCEEDED:
        message = done.error.message if done.error else done.status.value
        return web.json_response({"run": run.id, "error": message}, status=402)
    return web.json_response({"run": run.id, "receipt": done.data["receipt"]})


def web_app(**connection: Any) -> web.Application:
    """The aiohttp application; ``connection`` goes to ``legato.connect`` (URLs, settings...)."""

    async def legato_client(web_app: web.Application) -> AsyncIterator[None]:
        async with legato.connect(app=app, **connection) as client:
            web_app[CLIENT] = client
            yield

    application = web.Application()
    application.cleanup_ctx.append(legato_client)
    application.router.add_post("/checkout/{order}", place_order)
    return application


if __name__ == "__main__":
    web.run_app(web_app(), host="127.0.0.1", port=8080)
