"""Signed webhooks: ``POST /webhooks/{source}`` for each ``[webhooks.NAME]`` table.

The signature is the caller's credential (providers send no bearer token):
a delivery is verified over its raw body before anything else is read, and a
missing or bad signature gets 401 and counts in
``legato_webhook_refusals_total{source,reason}``, never a run. A verified
delivery is mapped to an event name and an idempotency key by the source's
templates, then accepted like ``POST /events/{name}``: one run per workflow
per key, committed before the 202.

A verified delivery whose event no workflow takes is answered 202 with
``ignored`` and counted (``outcome="ignored"``): providers retry any other
answer for days, and an event nobody wants now will not be wanted later.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import web

from legato.clock import Clock
from legato.config import WebhookSettings
from legato.errors import ConfigurationError
from legato.http.ingress import Ingress
from legato.http.requests import BadRequest, check_key, json_object, json_response, raw_body, trace_context
from legato.http.signatures import Scheme, SignatureRefused, verify
from legato.http.templates import Template, TemplateError
from legato.telemetry.metrics import Metrics

log = logging.getLogger("legato.http")

DEFAULTS: Mapping[Scheme, tuple[str, str]] = {
    Scheme.GITHUB: ("github.{header.X-GitHub-Event}", "github:{header.X-GitHub-Delivery}"),
    Scheme.STRIPE: ("stripe.{body.type}", "stripe:{body.id}"),
}
"""The event and key templates of each provider when its table names none."""


class Outcome(StrEnum):
    """What became of a verified delivery (the label of the deliveries counter)."""

    ACCEPTED = "accepted"
    """Its runs are committed (started now, or found by the key)."""
    IGNORED = "ignored"
    """No workflow takes its event."""


@dataclass(frozen=True)
class WebhookSource:
    name: str
    scheme: Scheme
    secret: bytes
    event: Template
    key: Template
    tolerance: float

    def __repr__(self) -> str:
        return f"WebhookSource({self.name!r}, {self.scheme.value}, event={self.event.text!r})"

    @classmethod
    def from_settings(cls, name: str, settings: WebhookSettings) -> WebhookSource:
        """Check a ``[webhooks.NAME]`` table; what is wrong names the table."""
        where = f"[webhooks.{name}]"
        try:
            scheme = Scheme(settings.provider)
        except ValueError:
            known = ", ".join(s.value for s in Scheme)
            raise ConfigurationError(
                f"{where} provider must be one of {known}, got {settings.provider!r}"
            ) from None
        event, key = DEFAULTS[scheme]
        if settings.tolerance <= 0:
            raise ConfigurationError(f"{where} tolerance must be > 0, got {settings.tolerance}")
        try:
            return cls(
                name,
                scheme,
                settings.secret.encode(),
                Template(settings.event or event),
                Template(settings.key or key),
                settings.tolerance,
            )
        except TemplateError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None


def webhook_sources(settings: Mapping[str, WebhookSettings]) -> dict[str, WebhookSource]:
    return {name: WebhookSource.from_settings(name, table) for name, table in settings.items()}


class Webhooks:
    def __init__(
        self,
        sources: Mapping[str, WebhookSource],
        ingress: Ingress,
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.sources = dict(sources)
        self.ingress = ingress
        self.clock = clock
        self.metrics = metrics

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/webhooks/{source}", self.post)]

    async def post(self, request: web.Request) -> web.Response:
        source = self.sources.get(request.match_info["source"])
        if source is None:
            raise BadRequest(f"no webhook source {request.match_info['source']!r} is configured", 404)
        raw = await raw_body(request)
        try:
            verify(source.scheme, source.secret, request.headers, raw, self.clock.now(), source.tolerance)
        except SignatureRefused as exc:
            # The reason only: never the secret, the signature or the body.
            log.warning("webhook %s: delivery refused: %s", source.name, exc)
            if self.metrics is not None:
                self.metrics.webhook_refusals.labels(source.name, exc.reason.value).inc()
            return json_response({"error": f"signature refused: {exc}"}, 401)
        body = json_object(raw, f"webhook {source.name!r}")
        event, key = _mapped(source, request.headers, body)
        if not self.ingress.app.triggered_by(event):
            self._count(source, Outcome.IGNORED)
            return json_response(
                {"event": event, "key": key, "runs": [], "ignored": "no workflow takes it"}, 202
            )
        accepted = await self.ingress.accept(event, body, key, trace=trace_context(request))
        self._count(source, Outcome.ACCEPTED)
        return json_response(accepted.json(), 202)

    def _count(self, source: WebhookSource, outcome: Outcome) -> None:
        if self.metrics is not None:
            self.metrics.webhook_deliveries.labels(source.name, outcome.value).inc()


def _mapped(source: WebhookSource, headers: Mapping[str, str], body: Mapping[str, Any]) -> tuple[str, str]:
    try:
        event, key = source.event.render(headers, body), source.key.render(headers, body)
    except TemplateError as exc:
        raise BadRequest(f"webhook {source.name!r}: {exc}") from None
    return event, check_key(key, f"webhook {source.name!r}: the idempotency key")
