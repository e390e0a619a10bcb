"""Which exporter the OTEL_* variables select, and tracing off installing nothing."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from legato.errors import ConfigurationError
from legato.machine.run import Run, RunStatus
from legato.telemetry.context import (
    format_traceparent,
    message_parent,
    parse_traceparent,
    root_context,
    root_span_id,
    trace_headers,
)
from legato.telemetry.setup import Telemetry
from legato.telemetry.tracing import exporters_from_env

RUN_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
PUBLISHER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def a_run(trace_context: dict[str, str] | None = None) -> Run:
    return Run(RUN_ID, "order", 1, RunStatus.RUNNING, 1, {}, {}, 0.0, 0.0, trace_context=trace_context)


@pytest.mark.parametrize(
    ("env", "kinds"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, [HttpExporter]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, [HttpExporter]),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            [GrpcExporter],
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
            [GrpcExporter],
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, [HttpExporter]),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, [ConsoleSpanExporter, HttpExporter]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318"}, []),
    ],
)
def test_the_standard_variables_choose_the_exporter(env: dict[str, str], kinds: list[type]) -> None:
    assert [type(e) for e in exporters_from_env(env)] == kinds


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "unknown exporter 'zipkin'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "'http/json' is not supported",
        ),
    ],
)
def test_unsupported_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        exporters_from_env(env)


def test_with_tracing_and_metrics_off_nothing_is_installed() -> None:
    telemetry = Telemetry.configure(metrics=False, env={})
    assert telemetry.tracing is None
    assert telemetry.observer() is None
    assert telemetry.middleware() == []
    telemetry.shutdown()


def test_a_run_without_a_publisher_is_its_own_trace() -> None:
    root = root_context(a_run())
    assert f"{root.trace_id:032x}" == RUN_ID.replace("-", "")
    assert root.span_id == root_span_id(RUN_ID)
    assert trace_headers(a_run()) == {"traceparent": f"00-{RUN_ID.replace('-', '')}-{root.span_id:016x}-01"}


def test_a_run_continues_its_publishers_trace() -> None:
    run = a_run({"traceparent": PUBLISHER, "tracestate": "vendor=1"})
    root = root_context(run)
    assert f"{root.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert root.span_id == root_span_id(RUN_ID) != 0x00F067AA0BA902B7
    assert trace_headers(run)["tracestate"] == "vendor=1"


def test_a_message_parent_is_its_header_when_it_is_in_the_runs_trace() -> None:
    run = a_run({"traceparent": PUBLISHER})
    sibling = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"
    assert message_parent({"traceparent": sibling.encode()}, run).span_id == 0x1111111111111111
    # Another trace, garbage, or nothing: the run's root span.
    for headers in (
        {"traceparent": "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-1111111111111111-01"},
        {"traceparent": "garbage"},
        {},
    ):
        assert message_parent(headers, run) == root_context(run)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "00-0000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
    ],
)
def test_invalid_traceparents_are_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_traceparent_round_trips() -> None:
    parsed = parse_traceparent(PUBLISHER)
    assert parsed is not None
    assert format_traceparent(parsed) == PUBLISHER
