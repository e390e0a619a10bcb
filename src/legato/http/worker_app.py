"""The worker's HTTP server (``legato worker --http-port``): probes, metrics,
the HTTP ingress, completion tokens, signed webhooks and the OpenAPI document,
in one application.

The ingress lives here rather than in a process of its own because the worker
already holds what accepting an event takes: the definitions (to refuse an
unknown workflow or event before anything starts), the store (to commit the
run before answering) and a free step slot (eager dispatch runs the first
step in the same process). Scaling the ingress is scaling the workers.
"""

from __future__ import annotations

from aiohttp import web

from legato.config import Settings
from legato.http.completions import CompletionRoutes
from legato.http.ingress import Ingress
from legato.http.openapi import document
from legato.http.probes import probe_routes
from legato.http.requests import errors, json_response
from legato.http.security import guard, harden
from legato.http.webhooks import Webhooks, webhook_sources
from legato.telemetry.metrics import Metrics
from legato.worker.runtime import Worker

WEBHOOK_PREFIX = "/webhooks/"


def worker_app(worker: Worker, metrics: Metrics | None, settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[guard(settings.http, signed=(WEBHOOK_PREFIX,)), errors],
        client_max_size=settings.ingress.max_body,
    )
    harden(app)
    ingress = Ingress(worker.app, worker.engine, worker.clock, settings.ingress, worker.eager)
    webhooks = Webhooks(webhook_sources(settings.webhooks), ingress, worker.clock, metrics)
    spec = document()

    async def openapi(request: web.Request) -> web.Response:
        return json_response(spec)

    app.add_routes(
        [
            *probe_routes(worker, metrics),
            *ingress.routes(),
            *CompletionRoutes(worker.engine).routes(),
            *webhooks.routes(),
            web.get("/openapi.json", openapi),
        ]
    )
    return app
