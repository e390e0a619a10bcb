"""One trace per run, across workers: the spans and their parents."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from legato import App, NonRetryableError, RunStatus, StepContext, Task, Workflow
from legato.broker.rabbitmq import RabbitMQBroker
from legato.machine.run import Phase
from legato.store.postgres import PostgresStore
from legato.telemetry.context import format_traceparent, root_context, root_span_id
from legato.telemetry.tracing import Tracing
from legato.worker.execute import StepOutcome
from legato.worker.middleware import Next, StepCall
from tests.apps import traced
from tests.integration.harness import all_runs, eventually, running, wait_finished


def tracing(exporter: InMemorySpanExporter, instance: str, rabbit: RabbitMQBroker) -> Tracing:
    resource = Resource.create({"service.name": "legato", "service.instance.id": instance})
    return Tracing([SimpleSpanProcessor(exporter)], resource=resource, topology=rabbit.topology)


@pytest.fixture
def stop_hook() -> Iterator[None]:
    yield
    traced.on_first_failure = None


class HeaderLog:
    """Middleware that remembers the trace header of every task message."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    async def __call__(self, call: StepCall, call_next: Next) -> StepOutcome:
        self.seen.append(call.headers.get("traceparent"))
        return await call_next(call)


def instance(span: ReadableSpan) -> object:
    assert span.resource is not None
    return span.resource.attributes.get("service.instance.id")


async def test_a_run_with_a_retry_across_two_workers_is_one_trace(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, stop_hook: None
) -> None:
    exporter = InMemorySpanExporter()
    publisher = tracing(exporter, "publisher", rabbit)
    first, second = tracing(exporter, "A", rabbit), tracing(exporter, "B", rabbit)

    headers: dict[str, str] = {}
    with publisher.tracer.start_as_current_span("publish trip.booked") as publish:
        TraceContextTextMapPropagator().inject(headers)
        await rabbit.publish_event(
            "trip.booked", orjson.dumps({"to": "Lisbon"}), message_id="t-1", headers=headers
        )
    publish_context = publish.get_span_context()

    # Worker A runs "book" and the first attempt of "pay", which fails and stops A.
    async with running(
        traced.app, pg_store, rabbit, observer=first.observer(), middleware=[first.middleware()]
    ) as worker_a:
        traced.on_first_failure = worker_a.stop
        [waiting] = await eventually(lambda: _in_retry_wait(pg_store))
    # Worker B fires the retry timer and runs the rest.
    log = HeaderLog()
    async with running(
        traced.app, pg_store, rabbit, observer=second.observer(), middleware=[second.middleware(), log]
    ):
        [run] = await wait_finished(pg_store, 1)
    assert run.status is RunStatus.SUCCEEDED

    spans = [s for s in exporter.get_finished_spans() if s.name != "publish trip.booked"]
    root_id = root_span_id(run.id)
    [root] = [s for s in spans if s.name == "run trip"]

    # One trace: the publisher's, continued by every span of the run.
    assert {s.context.trace_id for s in spans} == {publish_context.trace_id}
    assert root.context.span_id == root_id
    assert root.parent is not None
    assert root.parent.span_id == publish_context.span_id
    assert root.kind is SpanKind.CONSUMER
    assert instance(root) == "B"
    # Stored times are microseconds; the spans were made from the in-memory values.
    assert root.start_time == pytest.approx(run.created_at * 1e9, abs=2e3)
    assert run.finished_at is not None
    assert root.end_time == pytest.approx(run.finished_at * 1e9, abs=2e3)
    assert root.attributes is not None
    assert root.attributes["legato.run.status"] == "succeeded"
    # Every other span hangs under the run's root span.
    assert all(s.parent is not None and s.parent.span_id == root_id for s in spans if s is not root)

    steps = sorted(
        (s for s in spans if s.name.startswith("step ")),
        key=lambda s: s.start_time or 0,
    )
    assert [(s.name, _attr(s, "legato.attempt"), instance(s)) for s in steps] == [
        ("step book", 1, "A"),
        ("step pay", 1, "A"),
        ("step pay", 2, "B"),
        ("step notify", 1, "B"),
    ]
    failed = steps[1]
    assert failed.status.status_code is StatusCode.ERROR
    assert _attr(failed, "error.type") == "ConnectionError"
    assert [e.name for e in failed.events] == ["exception"]
    assert all(s.status.status_code is not StatusCode.ERROR for s in steps if s is not failed)
    assert all(_attr(s, "legato.run.id") == run.id for s in steps)
    assert all(s.kind is SpanKind.CONSUMER for s in steps)
    assert {_attr(s, "messaging.destination.name") for s in steps} == {
        rabbit.topology.task_queue(run.priority)
    }

    # The wait between the attempts, drawn from the history by worker A.
    [wait] = [s for s in spans if s.name == "retry wait pay"]
    assert instance(wait) == "A"
    assert wait.start_time is not None
    assert wait.end_time is not None
    assert wait.end_time - wait.start_time == pytest.approx(0.3e9, abs=1e6)
    assert failed.end_time is not None
    assert wait.start_time >= failed.end_time - 1e6
    [timer] = [s for s in spans if s.name == "timer retry"]
    assert instance(timer) == "B"
    assert timer.start_time is not None
    assert steps[2].start_time is not None
    assert timer.start_time <= steps[2].start_time
    assert root.end_time is not None
    assert steps[-1].end_time is not None
    assert root.end_time >= steps[-1].end_time

    # The task messages carried the run's context: W3C traceparent of the root span.
    assert log.seen == [format_traceparent(root_context(run))] * 2
    assert waiting.id == run.id


async def _in_retry_wait(store: PostgresStore) -> list[object] | None:
    runs = await all_runs(store)
    found = [r for r in runs if any(t.phase is Phase.RETRY_WAIT for t in r.tokens)]
    return found or None  # type: ignore[return-value]


def _attr(span: ReadableSpan, name: str) -> object:
    assert span.attributes is not None
    return span.attributes.get(name)


async def test_a_step_error_quoting_a_password_reaches_no_span(
    pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    secret = "hunter2-in-a-trace"

    async def leak(ctx: StepContext) -> None:
        raise NonRetryableError(f"cannot reach postgresql://app:{secret}@db/orders?password={secret}")

    app = App([Workflow("leaky", start="a", triggers=("leaky",), states={"a": Task(leak)})])
    exporter = InMemorySpanExporter()
    spans_of = tracing(exporter, "A", rabbit)
    async with running(
        app, pg_store, rabbit, observer=spans_of.observer(), middleware=[spans_of.middleware()]
    ):
        await rabbit.publish_event("leaky", b"{}", message_id="leak-1")
        [run] = await wait_finished(pg_store, 1)
    assert run.status is RunStatus.FAILED
    spans = exporter.get_finished_spans()
    shown = repr(
        [
            (
                s.name,
                dict(s.attributes or {}),
                s.status.description,
                [dict(e.attributes or {}) for e in s.events],
            )
            for s in spans
        ]
    )
    assert "postgresql://app:***@db/orders?password=***" in shown
    assert secret not in shown
