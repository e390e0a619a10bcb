"""A real worker with its HTTP server (ingress, webhooks, probes) on a free port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import orjson
from aiohttp import web

from legato.broker.base import Broker
from legato.config import HttpSettings, IngressSettings, Settings, WebhookSettings
from legato.http.server import serve_app
from legato.http.worker_app import worker_app
from legato.store.ports import Store
from legato.telemetry.metrics import Metrics
from legato.worker.runtime import Worker
from tests.apps.ingress import app
from tests.integration.harness import running

TOKEN = "ingress-test-token"
GITHUB_SECRET = "It's a Secret to Everybody"
STRIPE_SECRET = "whsec_test_0123456789abcdef"

SETTINGS = Settings(
    http=HttpSettings(token=TOKEN),
    ingress=IngressSettings(max_body=4096, max_wait=5.0),
    webhooks={
        "github": WebhookSettings("github", GITHUB_SECRET),
        "stripe": WebhookSettings("stripe", STRIPE_SECRET, tolerance=300.0),
    },
)


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Server:
    url: str
    worker: Worker
    metrics: Metrics
    session: aiohttp.ClientSession
    app: web.Application

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = TOKEN,
    ) -> Answer:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = orjson.dumps(body)
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.url + path, data=data, headers=sent) as response:
            text = await response.read()
            try:
                decoded: Any = orjson.loads(text)
            except ValueError:
                decoded = text.decode(errors="replace")
            return Answer(response.status, decoded, dict(response.headers))


@contextlib.asynccontextmanager
async def ingress_server(
    store: Store, broker: Broker, settings: Settings = SETTINGS
) -> AsyncIterator[Server]:
    metrics = Metrics()
    async with (
        running(app, store, broker) as worker,
        aiohttp.ClientSession() as session,
        anyio.create_task_group() as group,
    ):
        http = worker_app(worker, metrics, settings)
        host, port = await group.start(serve_app, http, settings.http)
        yield Server(f"http://{host}:{port}", worker, metrics, session, http)
        group.cancel_scope.cancel()
