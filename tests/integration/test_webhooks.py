"""Signed webhooks through a real worker's HTTP server, on Postgres and RabbitMQ.

The signatures are computed here with hmac, as GitHub and Stripe document
them, not with legato's own helpers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid

import orjson
import pytest

from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.postgres import PostgresStore
from tests.integration.harness import all_runs
from tests.integration.ingress import GITHUB_SECRET, SETTINGS, STRIPE_SECRET, Server, ingress_server


def github_headers(
    body: bytes, event: str = "push", delivery: str | None = None, secret: str = GITHUB_SECRET
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
        "Content-Type": "application/json",
    }


def stripe_headers(body: bytes, timestamp: int, secret: str = STRIPE_SECRET) -> dict[str, str]:
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={timestamp},v1={digest},v0=ignored", "Content-Type": "application/json"}


def refusals(server: Server, source: str, reason: str) -> float:
    value = server.metrics.registry.get_sample_value(
        "legato_webhook_refusals_total", {"source": source, "reason": reason}
    )
    return value or 0.0


async def test_a_github_delivery_starts_one_run_per_delivery_id(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = orjson.dumps({"ref": "refs/heads/main", "after": "abc123"})
    headers = github_headers(body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    async with ingress_server(pg_store, rabbit) as server:
        # No bearer token: the signature is the credential.
        first = await server.call("POST", "/webhooks/github", raw=body, headers=headers, token=None)
        again = await server.call("POST", "/webhooks/github", raw=body, headers=headers, token=None)
        assert first.status == 202, first.body
        assert first.body["event"] == "github.push"
        assert first.body["key"] == "github:72d3162e-cc78-11e3-81ab-4c9367dc0958"
        [started] = first.body["runs"]
        assert (started["workflow"], started["created"]) == ("delivery", True)
        assert again.body["runs"] == [{**started, "created": False}]
        [run] = await all_runs(pg_store)
        assert run.id == started["run_id"]
        assert run.input == {"ref": "refs/heads/main", "after": "abc123"}

        ping = await server.call(
            "POST", "/webhooks/github", raw=body, headers=github_headers(body, "ping"), token=None
        )
        assert (ping.status, ping.body["runs"], ping.body["event"]) == (202, [], "github.ping")
        assert "ignored" in ping.body
        deliveries = server.metrics.registry.get_sample_value
        assert deliveries("legato_webhook_deliveries_total", {"source": "github", "outcome": "accepted"}) == 2
        assert deliveries("legato_webhook_deliveries_total", {"source": "github", "outcome": "ignored"}) == 1
        assert len(await all_runs(pg_store)) == 1
    assert GITHUB_SECRET not in caplog.text


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h: h.pop("X-Hub-Signature-256"), "missing"),
        (lambda h: h.update({"X-Hub-Signature-256": "sha1=0123"}), "malformed"),
        (lambda h: h.update({"X-Hub-Signature-256": "sha256=" + "0" * 64}), "mismatch"),
        (lambda h: h.update(github_headers(b'{"ref": "other"}')), "mismatch"),  # signed another body
        (lambda h: h.update(github_headers(b'{"ref": "x"}', secret="guess")), "mismatch"),
    ],
)
async def test_a_bad_github_signature_is_401_counted_and_starts_nothing(
    pg_store: PostgresStore,
    rabbit: RabbitMQBroker,
    caplog: pytest.LogCaptureFixture,
    change: object,
    reason: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    body = b'{"ref": "x"}'
    headers = github_headers(body)
    change(headers)  # type: ignore[operator]
    async with ingress_server(pg_store, rabbit) as server:
        answer = await server.call("POST", "/webhooks/github", raw=body, headers=headers, token=None)
        assert answer.status == 401
        assert answer.body["error"].startswith("signature refused")
        assert refusals(server, "github", reason) == 1
        assert await all_runs(pg_store) == []
    assert GITHUB_SECRET not in caplog.text
    signature = headers.get("X-Hub-Signature-256", "").partition("=")[2]
    assert not signature or signature not in caplog.text


async def test_a_stripe_delivery_is_verified_with_its_timestamp(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = orjson.dumps(
        {"id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "type": "payment_intent.succeeded", "data": {}}
    )
    now = int(time.time())
    tolerance = int(SETTINGS.webhooks["stripe"].tolerance)
    async with ingress_server(pg_store, rabbit) as server:
        fresh = await server.call(
            "POST", "/webhooks/stripe", raw=body, headers=stripe_headers(body, now), token=None
        )
        assert fresh.status == 202, fresh.body
        assert (fresh.body["event"], fresh.body["key"]) == (
            "stripe.payment_intent.succeeded",
            "stripe:evt_1NG8Du2eZvKYlo2CUI79vXWy",
        )
        # Stripe retries a delivery with a new timestamp: the event id keeps it one run.
        retried = await server.call(
            "POST", "/webhooks/stripe", raw=body, headers=stripe_headers(body, now + 5), token=None
        )
        assert retried.body["runs"] == [{**fresh.body["runs"][0], "created": False}]

        for headers, reason in [
            (stripe_headers(body, now - tolerance - 60), "expired"),  # a captured delivery replayed late
            (stripe_headers(body, now + tolerance + 60), "expired"),  # signed in the future
            (stripe_headers(body, now, secret="whsec_guess"), "mismatch"),
            (stripe_headers(b'{"id": "evt_other", "type": "payment_intent.succeeded"}', now), "mismatch"),
            ({"Stripe-Signature": f"t={now}"}, "malformed"),
            ({"Stripe-Signature": "v1=abc"}, "malformed"),
            ({}, "missing"),
        ]:
            answer = await server.call("POST", "/webhooks/stripe", raw=body, headers=headers, token=None)
            assert answer.status == 401, (reason, answer)
        assert refusals(server, "stripe", "expired") == 2
        assert refusals(server, "stripe", "mismatch") == 2
        assert refusals(server, "stripe", "malformed") == 2
        assert refusals(server, "stripe", "missing") == 1
        assert len(await all_runs(pg_store)) == 1
    assert STRIPE_SECRET not in caplog.text


async def test_a_verified_delivery_that_cannot_be_mapped_is_a_named_4xx(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with ingress_server(pg_store, rabbit) as server:
        body = b'{"ref": "x"}'
        no_delivery = github_headers(body)
        del no_delivery["X-GitHub-Delivery"]
        cases = [
            ("/webhooks/github", body, no_delivery, 400, "no X-GitHub-Delivery header"),
            ("/webhooks/github", b"[1]", github_headers(b"[1]"), 400, "body must be a JSON object"),
            (
                "/webhooks/stripe",
                b'{"type": "x"}',
                stripe_headers(b'{"type": "x"}', int(time.time())),
                400,
                "no field 'id'",
            ),
            ("/webhooks/gitlab", body, github_headers(body), 404, "no webhook source 'gitlab'"),
        ]
        for path, raw, headers, status, message in cases:
            answer = await server.call("POST", path, raw=raw, headers=headers, token=None)
            assert answer.status == status, (path, answer)
            assert message in answer.body["error"], (path, answer)
        assert await all_runs(pg_store) == []
