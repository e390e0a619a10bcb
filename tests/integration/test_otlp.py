"""Spans leave by OTLP, configured by the standard OTEL_* variables only.

A real OTLP/HTTP receiver on loopback takes the spans of two worker
processes; a gRPC receiver takes those of an in-process worker.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from legato import App, RunStatus, StepContext, Task, Workflow
from legato.broker.base import Topology
from legato.broker.memory import MemoryBroker
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.store.postgres import PostgresStore
from legato.store.sqlite import SqliteStore
from legato.telemetry.context import root_span_id
from legato.telemetry.setup import Telemetry
from tests.conftest import worker_env
from tests.integration.harness import eventually, running, spawn_worker, wait_finished


@dataclass
class Received:
    """Spans as a collector decoded them, with their resource's attributes."""

    spans: list[tuple[dict[str, Any], Span]] = field(default_factory=list)

    def add(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope in resource_spans.scope_spans:
                self.spans.extend((resource, span) for span in scope.spans)

    def named(self, name: str) -> list[tuple[dict[str, Any], Span]]:
        return [(r, s) for r, s in self.spans if s.name == name]


def _attributes(values: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for kv in values:
        assert isinstance(kv, KeyValue)
        which = kv.value.WhichOneof("value")
        found[kv.key] = getattr(kv.value, which) if which else None
    return found


@pytest.fixture
async def otlp_http() -> AsyncIterator[tuple[str, Received]]:
    received = Received()

    async def traces(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        received.add(ExportTraceServiceRequest.FromString(await request.read()))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    # Not in a task group: pytest-asyncio sets a fixture up and tears it down in different tasks.
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        await runner.cleanup()


async def test_two_worker_processes_export_one_trace_over_otlp_http(
    otlp_http: tuple[str, Received],
    pg_store: PostgresStore,
    rabbit: RabbitMQBroker,
    pg_schema: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    endpoint, received = otlp_http
    env = worker_env(
        pg_schema,
        namespace,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME="legato-test",
        OTEL_BSP_SCHEDULE_DELAY="100",
        # The first attempt of "pay" stops the worker that runs it (SIGTERM to itself).
        TRACED_STOP_ON_FAILURE="1",
    )
    log = tmp_path / "workers.log"
    trace_id, publisher_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    first = spawn_worker("tests.apps.traced:app", env, log=log)
    await rabbit.publish_event(
        "trip.booked",
        orjson.dumps({"to": "Porto"}),
        message_id="trip-otlp",
        headers={"traceparent": f"00-{trace_id}-{publisher_span}-01"},
    )
    first_code = await anyio.to_thread.run_sync(first.wait)
    assert first_code == 0, log.read_text()
    second = spawn_worker("tests.apps.traced:app", env, log=log)
    try:
        [run] = await wait_finished(pg_store, 1)
    finally:
        second.send_signal(signal.SIGTERM)
        second_code = await anyio.to_thread.run_sync(second.wait)
    assert second_code == 0, log.read_text()
    assert run.status is RunStatus.SUCCEEDED

    await eventually(lambda: received.named("run trip"), timeout=10)
    spans = [(r, s) for r, s in received.spans if s.trace_id.hex() == trace_id]
    assert len(spans) == len(received.spans)
    [(root_resource, root)] = received.named("run trip")
    assert root.parent_span_id.hex() == publisher_span
    assert int.from_bytes(root.span_id, "big") == root_span_id(run.id)
    assert root.kind == Span.SpanKind.SPAN_KIND_CONSUMER
    assert all(s.parent_span_id == root.span_id for _, s in spans if s is not root)

    steps = sorted(
        ((r, s) for r, s in spans if s.name.startswith("step ")), key=lambda rs: rs[1].start_time_unix_nano
    )
    pids = [r["process.pid"] for r, _ in steps]
    assert [(s.name, _attributes(s.attributes)["legato.attempt"]) for _, s in steps] == [
        ("step book", 1),
        ("step pay", 1),
        ("step pay", 2),
        ("step notify", 1),
    ]
    assert pids[0] == pids[1] == first.pid
    assert pids[2] == pids[3] == root_resource["process.pid"] == second.pid
    assert {r["service.name"] for r, _ in spans} == {"legato-test"}
    assert steps[1][1].status.code == Status.StatusCode.STATUS_CODE_ERROR
    assert "ConnectionError" in steps[1][1].status.message
    assert [e.name for e in steps[1][1].events] == ["exception"]
    assert received.named("retry wait pay")


async def test_spans_go_to_an_otlp_grpc_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    received = Received()

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        async def Export(
            self, request: ExportTraceServiceRequest, context: Any
        ) -> ExportTraceServiceResponse:
            received.add(request)
            return ExportTraceServiceResponse()

    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        telemetry = Telemetry.configure(metrics=False)
        assert telemetry.tracing is not None

        async def hello(ctx: StepContext) -> dict[str, str]:
            return {"hello": "world"}

        app = App([Workflow("hello", start="a", states={"a": Task(hello)})])
        store, broker = SqliteStore(tmp_path / "legato.db"), MemoryBroker(Topology("grpc"))
        async with running(
            app, store, broker, observer=telemetry.observer(), middleware=telemetry.middleware()
        ):
            client = Client(store, broker, app)
            run = await client.start("hello", {})
            await client.wait(run.id)
        await anyio.to_thread.run_sync(telemetry.shutdown)
    finally:
        await server.stop(None)
    names = sorted(s.name for _, s in received.spans)
    assert names == ["run hello", "step a"]
    assert {s.trace_id.hex() for _, s in received.spans} == {run.id.replace("-", "")}
