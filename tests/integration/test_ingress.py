"""HTTP ingress through a real worker's HTTP server, on Postgres and RabbitMQ."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import anyio
import orjson

from legato.broker.rabbitmq import RabbitMQBroker
from legato.config import HttpSettings
from legato.machine.run import RunStatus
from legato.store.postgres import PostgresStore
from tests.integration.harness import all_runs, eventually
from tests.integration.ingress import SETTINGS, TOKEN, Server, ingress_server


async def test_an_event_is_committed_before_it_is_answered(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    async with ingress_server(pg_store, rabbit) as server:
        answer = await server.call(
            "POST", "/events/order.placed", {"order": "A1"}, headers={"Idempotency-Key": '"evt-A1"'}
        )
        assert answer.status == 202, answer.body
        assert answer.body["event"] == "order.placed"
        assert answer.body["key"] == "evt-A1"
        started = {r["workflow"]: r for r in answer.body["runs"]}
        assert set(started) == {"order", "audit"}
        assert all(r["created"] for r in started.values())
        # Read on a connection of its own: the rows are committed, not just held by the worker.
        import asyncpg

        from tests.conftest import PG_DSN

        conn = await asyncpg.connect(PG_DSN)
        try:
            rows = await conn.fetch(f'SELECT id::text, idempotency_key, input FROM "{pg_schema}".runs')
        finally:
            await conn.close()
        assert {r["id"]: r["idempotency_key"] for r in rows} == {
            started["order"]["run_id"]: "order:evt-A1",
            started["audit"]["run_id"]: "audit:evt-A1",
        }
        assert all(orjson.loads(r["input"]) == {"order": "A1"} for r in rows)


async def test_one_key_one_run_over_http_and_amqp(pg_store: PostgresStore, rabbit: RabbitMQBroker) -> None:
    async with ingress_server(pg_store, rabbit) as server:
        first = await server.call(
            "POST", "/events/greet.requested", {"name": "ada"}, headers={"Idempotency-Key": "k1"}
        )
        again = await server.call(
            "POST", "/events/greet.requested", {"name": "ada"}, headers={"Idempotency-Key": "k1"}
        )
        assert (first.status, again.status) == (202, 202)
        assert again.body["runs"][0]["run_id"] == first.body["runs"][0]["run_id"]
        assert (first.body["runs"][0]["created"], again.body["runs"][0]["created"]) == (True, False)

        # An AMQP event and an HTTP event with the same key are one event.
        await rabbit.publish_event("greet.requested", orjson.dumps({"name": "bob"}), message_id="k2")
        [amqp_run] = await eventually(lambda: _runs_keyed(pg_store, "greet:k2"))
        over_http = await server.call(
            "POST", "/events/greet.requested", {"name": "bob"}, headers={"Idempotency-Key": "k2"}
        )
        assert over_http.body["runs"] == [{"workflow": "greet", "run_id": amqp_run.id, "created": False}]

        # Without a key, the content is the key (as for AMQP without message_id).
        plain = [await server.call("POST", "/events/greet.requested", {"name": "cy"}) for _ in range(2)]
        assert plain[0].body["runs"][0]["run_id"] == plain[1].body["runs"][0]["run_id"]
        assert plain[0].body["key"].startswith("sha256:")
        other = await server.call("POST", "/events/greet.requested", {"name": "dee"})
        assert other.body["runs"][0]["run_id"] != plain[0].body["runs"][0]["run_id"]

        # The same key with another body starts nothing and says so.
        reused = await server.call(
            "POST", "/events/greet.requested", {"name": "eve"}, headers={"Idempotency-Key": "k1"}
        )
        assert reused.status == 422
        assert "key 'k1' already started run" in reused.body["error"]
        assert "another body" in reused.body["error"]
        assert len(await all_runs(pg_store)) == 4  # k1, k2, cy, dee


async def test_the_same_key_sent_at_once_from_many_callers_starts_one_run(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with ingress_server(pg_store, rabbit) as server:
        answers: list[Any] = []

        async def send() -> None:
            answers.append(
                await server.call(
                    "POST", "/events/greet.requested", {"name": "zed"}, headers={"Idempotency-Key": "same"}
                )
            )

        async with anyio.create_task_group() as group:
            for _ in range(12):
                group.start_soon(send)
        assert {a.status for a in answers} == {202}
        assert len({a.body["runs"][0]["run_id"] for a in answers}) == 1
        assert sorted(a.body["runs"][0]["created"] for a in answers) == [False] * 11 + [True]
        assert len(await all_runs(pg_store)) == 1


async def _runs_keyed(store: PostgresStore, key: str) -> list[Any]:
    return [r for r in await all_runs(store) if r.idempotency_key == key]


BAD_CALLS: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("POST", "/events/order.placed", {"raw": b"[1, 2]"}, 400, "body must be a JSON object, got list"),
    ("POST", "/events/order.placed", {"raw": b"{not json"}, 400, "body is not valid JSON"),
    ("POST", "/events/order.placed", {"raw": b""}, 400, "body is not valid JSON"),
    ("POST", "/events/legato.signal", {"body": {}}, 404, "no workflow is triggered by event 'legato.signal'"),
    (
        "POST",
        "/events/order.placed",
        {"body": {}, "headers": {"Idempotency-Key": ""}},
        400,
        "Idempotency-Key header is empty",
    ),
    (
        "POST",
        "/events/order.placed",
        {"body": {}, "headers": {"Idempotency-Key": '"open'}},
        400,
        "not closed",
    ),
    (
        "POST",
        "/events/order.placed",
        {"body": {}, "headers": {"Idempotency-Key": "k" * 256}},
        400,
        "256 characters long; at most 255",
    ),
    (
        "POST",
        "/events/order.placed",
        {"body": {}, "headers": {"X-Legato-Priority": "urgent"}},
        400,
        "unknown priority 'urgent'",
    ),
    ("POST", "/events/order.placed", {"raw": b'{"pad": "' + b"x" * 5000 + b'"}'}, 413, "too large"),
    ("POST", "/events/order.placed", {"body": {}, "token": None}, 401, "needs the token"),
    ("POST", "/events/order.placed", {"body": {}, "token": "wrong"}, 401, "needs the token"),
    ("POST", "/workflows/nope/runs", {"body": {}}, 404, "unknown workflow 'nope'"),
    ("POST", "/workflows/greet/runs", {"body": {"input": [1]}}, 400, "input must be a JSON object, got list"),
    ("POST", "/workflows/greet/runs", {"body": {"colour": 1}}, 400, "unknown field 'colour'"),
    ("POST", "/workflows/greet/runs", {"body": {"key": 5}}, 400, "key must be a non-empty string"),
    ("POST", "/workflows/greet/runs", {"body": {"priority": "urgent"}}, 400, "unknown priority 'urgent'"),
    (
        "POST",
        "/workflows/greet/runs?wait=soon",
        {"body": {}},
        400,
        "wait must be a number of seconds, got 'soon'",
    ),
    ("POST", "/workflows/greet/runs?wait=-1", {"body": {}}, 400, "wait must be between 0 and 5 seconds"),
    ("POST", "/workflows/greet/runs?wait=60", {"body": {}}, 400, "wait must be between 0 and 5 seconds"),
    (
        "POST",
        "/workflows/greet/runs",
        {"body": {"key": "a"}, "headers": {"Idempotency-Key": "b"}},
        400,
        "differ",
    ),
    ("POST", "/workflows/greet/runs", {"raw": b'"just text"'}, 400, "must be a JSON object, got str"),
    (
        "POST",
        "/runs/8c6f0000-0000-0000-0000-000000000000/signals/approve",
        {"body": {}},
        404,
        "no run with id",
    ),
    ("POST", "/runs/not-a-uuid/signals/approve", {"body": {}}, 404, "no run with id 'not-a-uuid'"),
    ("GET", "/runs/not-a-uuid", {}, 404, "no run with id 'not-a-uuid'"),
    ("GET", "/runs/8c6f0000-0000-0000-0000-000000000000", {}, 404, "no run with id"),
]


async def test_every_refusal_names_the_problem_and_starts_nothing(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with ingress_server(pg_store, rabbit) as server:
        for method, path, options, status, message in BAD_CALLS:
            answer = await server.call(method, path, **options)
            assert answer.status == status, (path, options, answer)
            assert message in answer.body["error"], (path, options, answer)
        assert await all_runs(pg_store) == []


async def test_a_run_started_with_wait_answers_its_result(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with ingress_server(pg_store, rabbit) as server:
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        done = await server.call(
            "POST",
            "/workflows/greet/runs?wait=5",
            {"input": {"name": "ada"}, "key": "g1"},
            headers={"traceparent": parent},
        )
        assert done.status == 200, done.body
        assert done.body["run"]["status"] == RunStatus.SUCCEEDED
        assert done.body["run"]["data"]["greeting"] == "hello ada"
        same = await server.call("POST", "/workflows/greet/runs", {"input": {"name": "ada"}, "key": "g1"})
        assert (same.body["created"], same.body["run"]["id"]) == (False, done.body["run"]["id"])
        run = await pg_store.load_run(done.body["run"]["id"])
        assert run is not None
        assert run.trace_context is not None
        assert run.trace_context["traceparent"] == parent  # the run's trace continues the caller's


async def test_without_a_token_the_ingress_only_reads(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with ingress_server(pg_store, rabbit, replace(SETTINGS, http=HttpSettings())) as server:
        refused = await server.call("POST", "/events/order.placed", {}, token=None)
        assert refused.status == 403
        assert "actions are disabled" in refused.body["error"]
        assert (await server.call("GET", "/openapi.json", token=None)).status == 200
        assert await all_runs(pg_store) == []


async def test_a_run_that_does_not_finish_in_time_is_202_then_signalled(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with ingress_server(pg_store, rabbit) as server:
        waited = await server.call(
            "POST",
            "/workflows/approval/runs?wait=0.3",
            {"priority": "high"},
            headers={"Idempotency-Key": '"r-1"'},
        )
        assert waited.status == 202, waited.body
        run_id = waited.body["run"]["id"]
        assert waited.headers["Location"] == f"/runs/{run_id}"
        assert waited.body["run"]["status"] != RunStatus.SUCCEEDED
        assert waited.body["run"]["priority"] == 2
        assert (await server.call("GET", f"/runs/{run_id}", token=None)).status == 200  # reads on loopback

        await eventually(lambda: _awaiting_signal(server, run_id))
        control = await server.call("POST", f"/runs/{run_id}/signals/app%00rove", {})
        assert control.status == 400
        assert "has control characters" in control.body["error"]
        refused = await server.call("POST", f"/runs/{run_id}/signals/reject", {})
        assert refused.status == 409
        assert "signal 'reject' refused" in refused.body["error"]
        signalled = await server.call("POST", f"/runs/{run_id}/signals/approve", {"by": "dora"})
        assert signalled.status == 200, signalled.body
        finished = await eventually(lambda: _finished(server, run_id))
        assert finished["status"] == RunStatus.SUCCEEDED
        assert finished["data"]["by"] == "dora"


async def _awaiting_signal(server: Server, run_id: str) -> bool:
    run = (await server.call("GET", f"/runs/{run_id}")).body["run"]
    return any(token["phase"] == "awaiting_signal" for token in run["tokens"])


async def _finished(server: Server, run_id: str) -> dict[str, Any] | None:
    run: dict[str, Any] = (await server.call("GET", f"/runs/{run_id}")).body["run"]
    return run if run["finished_at"] is not None else None


async def test_the_openapi_document_names_every_route(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with ingress_server(pg_store, rabbit) as server:
        answer = await server.call("GET", "/openapi.json", token=None)
        assert answer.status == 200
        assert set(answer.body["paths"]) == {
            "/events/{name}",
            "/workflows/{name}/runs",
            "/runs/{run_id}/signals/{name}",
            "/runs/{run_id}",
            "/tokens/{token}/complete",
            "/tokens/{token}/fail",
            "/webhooks/{source}",
        }
        routes = {
            route.resource.canonical for route in server.app.router.routes() if route.resource is not None
        }
        assert set(answer.body["paths"]) <= routes
        assert TOKEN not in str(answer.body)


async def test_every_answer_of_the_worker_says_no_sniffing_and_no_framing(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with ingress_server(pg_store, rabbit) as server:
        for method, path, token, status in [
            ("GET", "/healthz", None, 200),
            ("GET", "/openapi.json", None, 200),
            ("GET", "/nowhere", None, 404),
            ("POST", "/events/order.placed", None, 401),
            ("POST", "/events/legato.reserved", TOKEN, 404),
        ]:
            answer = await server.call(method, path, {} if method == "POST" else None, token=token)
            assert answer.status == status, (path, answer.body)
            assert answer.headers["X-Content-Type-Options"] == "nosniff", path
            assert answer.headers["X-Frame-Options"] == "DENY", path
            assert answer.headers["Content-Security-Policy"] == "frame-ancestors 'none'", path


async def test_an_event_reaches_every_app_that_wants_it_and_one_nobody_wants_is_dead_lettered(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, namespace: str
) -> None:
    from legato.broker.base import Topology
    from legato.client import Client
    from legato.worker.runtime import WorkerSettings
    from tests.apps.cluster import billing
    from tests.conftest import AMQP_URL
    from tests.integration.harness import running

    other = RabbitMQBroker(AMQP_URL, Topology(namespace))
    async with (
        ingress_server(pg_store, rabbit) as server,
        running(billing, pg_store, other, WorkerSettings()),
    ):
        # Another app's event: published for it, started by its worker.
        answer = await server.call(
            "POST", "/events/invoice.due", {"n": 1}, headers={"Idempotency-Key": "inv-1"}
        )
        assert (answer.status, answer.body["runs"]) == (202, [])
        [invoice] = await eventually(lambda: all_runs(pg_store, "invoice"))
        assert (invoice.idempotency_key, invoice.input) == ("invoice:inv-1", {"n": 1})
        # This app's event: started here, and its copy on the broker starts nothing again.
        answer = await server.call(
            "POST", "/events/order.placed", {"order": "B"}, headers={"Idempotency-Key": "o-1"}
        )
        assert {r["workflow"] for r in answer.body["runs"]} == {"order", "audit"}
        # An event nobody wants: accepted for the broker, dead-lettered there with its reason.
        answer = await server.call("POST", "/events/nobody.listens", {})
        assert (answer.status, answer.body["runs"]) == (202, [])
        client = Client(pg_store, None, billing)
        [letter] = await eventually(client.dead_letters)
        assert letter.reason == "no workflow is triggered by event 'nobody.listens'"
        await eventually(lambda: _drained(rabbit))
        assert [d.reason for d in await client.dead_letters()] == [letter.reason]
    assert sorted(r.workflow for r in await all_runs(pg_store)) == ["audit", "invoice", "order"]


async def _drained(broker: RabbitMQBroker) -> bool:
    return (await broker.depths())[broker.topology.app_queue] == 0
