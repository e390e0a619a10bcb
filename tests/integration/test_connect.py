"""``legato.connect`` and ``legato.connect_sync`` against the real Postgres and RabbitMQ,
beside a worker, and the web example (examples/web_checkout.py) on them."""

from __future__ import annotations

import anyio
import pytest
from aiohttp.test_utils import TestClient, TestServer
from examples import web_checkout

import legato
from legato import RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.postgres import PostgresStore
from tests.apps import recovery
from tests.conftest import AMQP_URL, PG_DSN
from tests.integration.harness import running
from tests.integration.test_recovery import SETTINGS


async def test_connect_with_urls_starts_a_run_and_awaits_its_result(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str
) -> None:
    async with (
        running(recovery.app, pg_store, rabbit, SETTINGS),
        legato.connect(
            PG_DSN, AMQP_URL, schema=pg_schema, namespace=namespace, app=recovery.app, pool_size=2
        ) as client,
    ):
        run = await client.start("retrying", {"fail_times": 1})
        done = await client.result(run.id, timeout=30)
        assert (done.status, done.data["succeeded_on"]) == (RunStatus.SUCCEEDED, 2)
        assert client.broker is not None  # RabbitMQ is connected: the task went straight to the queue


async def test_connect_reads_the_environment_and_the_sync_client_works_from_a_thread(
    pg_store: PostgresStore,
    rabbit: RabbitMQBroker,
    pg_schema: str,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "LEGATO_DATABASE_URL": PG_DSN,
        "LEGATO_DATABASE_SCHEMA": pg_schema,
        "LEGATO_BROKER_URL": AMQP_URL,
        "LEGATO_NAMESPACE": namespace,
        "LEGATO_POOL_SIZE": "2",
        "LEGATO_APP": "tests.apps.recovery:app",
    }.items():
        monkeypatch.setenv(name, value)

    def script() -> tuple[legato.Run, legato.Run]:
        with legato.connect_sync() as client:
            desk = client.start("desk", {})
            client.signal(desk.id[:8], "approve", {"by": "script"})
            declined = client.start("declined", {})
            return client.result(desk.id, timeout=30), client.result(declined.id, timeout=30)

    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        desk, declined = await anyio.to_thread.run_sync(script)
    assert (desk.status, desk.data["by"]) == (RunStatus.SUCCEEDED, "script")
    assert declined.status is RunStatus.FAILED


async def test_the_web_example_on_postgres_and_rabbitmq(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str
) -> None:
    web = web_checkout.web_app(
        database_url=PG_DSN, broker_url=AMQP_URL, schema=pg_schema, namespace=namespace, pool_size=2
    )
    async with running(web_checkout.app, pg_store, rabbit, SETTINGS), TestClient(TestServer(web)) as http:
        paid = await http.post("/checkout/P1", json={"amount": 30})
        assert paid.status == 200, await paid.text()
        answer = await paid.json()
        again = await http.post("/checkout/P1", json={"amount": 30})
        assert await again.json() == answer
        refused = await http.post("/checkout/P2", json={"amount": -1})
        assert (refused.status, (await refused.json())["error"]) == (402, "cannot charge -1")
    run = await pg_store.load_run(answer["run"])
    assert run is not None
    assert run.data["charged"] == 30
