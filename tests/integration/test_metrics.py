"""Prometheus metrics and health probes, as a scraper and a kubelet see them."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import aiohttp
import anyio
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from legato import Approval, Every, OperationRefused, RetryPolicy, StepContext, Succeed, Task, Wait, Workflow
from legato.app import App
from legato.broker.base import Topology
from legato.broker.memory import MemoryBroker
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.config import HttpSettings
from legato.errors import NonRetryableError
from legato.http.probes import probes_app, readiness
from legato.http.server import serve_app
from legato.observe import ConflictInput, RateLimitWaitedInput
from legato.store.postgres import PostgresStore
from legato.store.sqlite import SqliteStore
from legato.telemetry.metrics import Metrics
from legato.worker.runtime import Worker
from tests.conftest import AMQP_URL, worker_env
from tests.integration.harness import eventually, running, spawn_worker, wait_finished
from tests.promtool import promtool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def total(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and wanted <= set(ls))


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_a_worker_process_serves_metrics_and_probes(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "worker.log"
    process = spawn_worker(
        "tests.apps.traced:app", worker_env(pg_schema, namespace), "--http-port", str(port), log=log
    )
    base = f"http://127.0.0.1:{port}"
    try:

        async def ready() -> bool:
            try:
                status, _ = await get(f"{base}/readyz")
            except aiohttp.ClientError:
                return False
            return status == 200

        await eventually(ready, timeout=30)
        assert (await get(f"{base}/healthz"))[0] == 200
        for i in range(3):
            await rabbit.publish_event("trip.booked", orjson.dumps({"n": i}), message_id=f"m-{i}")
        await wait_finished(pg_store, 3)
        status, text = await get(f"{base}/metrics")
    finally:
        process.send_signal(signal.SIGTERM)
        code = await anyio.to_thread.run_sync(process.wait)
    assert code == 0, log.read_text()
    assert status == 200
    # Prometheus's own linter: the exposition is valid and follows its naming rules.
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""
    found = samples(text)
    assert value(found, "legato_runs_started_total", workflow="trip") == 3
    assert value(found, "legato_runs_finished_total", workflow="trip", status="succeeded") == 3
    assert value(found, "legato_run_duration_seconds_count", workflow="trip", status="succeeded") == 3
    for state, failed in (("book", 0), ("pay", 3), ("notify", 0)):
        assert (
            value(
                found,
                "legato_step_attempts_total",
                workflow="trip",
                state=state,
                kind="step",
                outcome="succeeded",
            )
            == 3
        )
        assert total(found, "legato_step_attempts_total", state=state, outcome="failed") == failed
    assert value(found, "legato_step_duration_seconds_count", workflow="trip", state="pay", kind="step") == 6
    assert value(found, "legato_step_retries_total", workflow="trip", state="pay") == 3
    assert total(found, "legato_step_queue_lag_seconds_count", workflow="trip") == 12
    assert value(found, "legato_steps_in_flight", workflow="trip") == 0
    assert (("queue", f"{namespace}.tasks.normal"),) in {ls for n, ls in found if n == "legato_queue_depth"}
    # Bounded cardinality: no run ids as labels.
    assert not [ls for _, ls in found if any(k in ("run", "run_id", "id") for k, _ in ls)]


async def test_run_outcomes_sla_dead_letters_and_operator_actions_are_counted(tmp_path: Path) -> None:
    async def ok(ctx: StepContext) -> None:
        return None

    async def broken(ctx: StepContext) -> None:
        raise NonRetryableError("no such customer")

    app = App(
        [
            Workflow("fast", start="a", sla=60, states={"a": Task(ok)}),
            Workflow(
                "slow",
                start="nap",
                sla=0.05,
                states={"nap": Wait(seconds=0.3, next="done"), "done": Succeed()},
            ),
            Workflow("bad", start="a", retry=RetryPolicy.none(), states={"a": Task(broken)}),
            Workflow(
                "gate",
                start="wait",
                triggers=("gate.opened",),
                states={"wait": Approval("open", next="done"), "done": Succeed()},
            ),
        ]
    )
    metrics = Metrics()
    store, broker = SqliteStore(tmp_path / "legato.db"), MemoryBroker(Topology("metrics"))
    async with running(app, store, broker, observer=metrics.observer(), middleware=[metrics.middleware()]):
        client = Client(store, broker, app, actor="ops", observer=metrics.observer())
        runs = [await client.start(name, {}) for name in ("fast", "slow", "bad", "gate")]
        await broker.publish_event("gate.opened", b"not json")
        for run in runs[:3]:
            await client.wait(run.id)
        with pytest.raises(OperationRefused):
            await client.signal(runs[3].id, "close")
        await eventually(lambda: _awaiting(client, runs[3].id))
        await client.signal(runs[3].id, "open")
        await client.wait(runs[3].id)
        await eventually(
            lambda: value(
                samples(metrics.render().decode()), "legato_dead_letters_total", workflow="", source="message"
            )
        )
    metrics.observer().rate_limit_waited(RateLimitWaitedInput("payments", 0.25))
    metrics.observer().conflict(ConflictInput("some-run"))
    found = samples(metrics.render().decode())
    assert value(found, "legato_sla_total", workflow="fast", outcome="met") == 1
    # Missed once, when the deadline fired -- not again when the run finished.
    assert value(found, "legato_sla_total", workflow="slow", outcome="missed") == 1
    assert value(found, "legato_runs_finished_total", workflow="bad", status="failed") == 1
    assert value(found, "legato_dead_letters_total", workflow="bad", source="step") == 1
    assert value(found, "legato_dead_letters_total", workflow="", source="message") == 1
    assert value(found, "legato_operator_actions_total", workflow="gate", action="signal") == 1
    assert value(found, "legato_rejections_total", event="SignalReceived") == 1
    assert value(found, "legato_rate_limit_wait_seconds_count", limit="payments") == 1
    assert value(found, "legato_rate_limit_wait_seconds_sum", limit="payments") == 0.25
    assert value(found, "legato_conflicts_total") == 1


async def _awaiting(client: Client, run_id: str) -> bool:
    return bool((await client.get(run_id)).current_states)


async def test_readyz_says_what_is_wrong(tmp_path: Path, namespace: str) -> None:
    from legato.broker.rabbitmq import RabbitMQBroker

    store = SqliteStore(tmp_path / "legato.db")
    await store.open()
    worker = Worker(App(), store, RabbitMQBroker(AMQP_URL, Topology(namespace)))
    try:
        checks = await readiness(worker)
        assert checks == {
            "consuming": "not consuming",
            "database": "ok",
            "broker": "BrokerError: not connected to RabbitMQ",
        }
        async with anyio.create_task_group() as group:
            app = probes_app(worker, None, HttpSettings())
            _, port = await group.start(serve_app, app, HttpSettings(port=0))
            status, body = await get(f"http://127.0.0.1:{port}/readyz")
            assert status == 503
            assert orjson.loads(body)["checks"]["broker"].startswith("BrokerError")
            assert (await get(f"http://127.0.0.1:{port}/healthz"))[0] == 200
            assert (await get(f"http://127.0.0.1:{port}/metrics"))[0] == 404
            group.cancel_scope.cancel()
    finally:
        await store.close()


async def test_schedules_next_fire_times_are_read_at_scrape_time(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "legato.db")
    await store.open()
    await store.migrate()
    app = App()
    app.register(
        Workflow(
            "nightly",
            start="done",
            states={"done": Succeed()},
            schedules=[Every(3600, name="hourly"), Every(60, name="minutely")],
        )
    )
    metrics = Metrics()
    worker = Worker(app, store, MemoryBroker(Topology("m")))
    try:
        await worker.schedules.reconcile()
        await worker.schedules.pause("minutely")
        hourly = await worker.schedules.get("hourly")
        async with anyio.create_task_group() as group:
            _, port = await group.start(
                serve_app, probes_app(worker, metrics, HttpSettings()), HttpSettings(port=0)
            )
            found = samples((await get(f"http://127.0.0.1:{port}/metrics"))[1])
            group.cancel_scope.cancel()
    finally:
        await store.close()
    assert value(found, "legato_schedule_next_fire_timestamp_seconds", schedule="hourly") == hourly.timer_at
    names = {
        dict(ls).get("schedule") for n, ls in found if n == "legato_schedule_next_fire_timestamp_seconds"
    }
    assert names == {"hourly"}  # the paused one is not exported
