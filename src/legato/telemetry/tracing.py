"""OpenTelemetry traces: one trace per run, whichever processes run it.

Two kinds of spans, both children of the run's root span (see
:mod:`legato.telemetry.context`), so Jaeger shows a run as one flat timeline:

- live spans, around the work as it happens: every step and compensation
  attempt (:class:`StepSpans`, a step middleware). The span is current while
  the handler runs, so the handler's own spans (HTTP calls, queries) nest
  under it.
- spans drawn from the transitions the engine commits (:class:`RunSpans`, an
  observer), with the times the history records: retry waits, wait states,
  timers firing, operator actions, dead letters, rejected events, and the
  root span itself, emitted when the run finishes and spanning its whole life.

Task messages carry the run's context in W3C ``traceparent``/``tracestate``
headers (:meth:`RunSpans.message_headers`); a step span's parent is what its
message says. With no exporter configured, :meth:`Tracing.from_env` returns
None and none of this is installed: tracing off costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, assert_never

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.trace import NonRecordingSpan, SpanKind, Status, StatusCode

from legato.broker.base import Topology
from legato.errors import ConfigurationError
from legato.machine.commands import HistoryRecord
from legato.machine.errors import ErrorInfo
from legato.machine.run import Run, RunStatus, StepKind
from legato.machine.vocabulary import OPERATOR_ACTIONS, TIMER_FIRINGS, HistoryKind
from legato.observe import AppliedInput, MessageHeadersInput, Observer, RejectedInput
from legato.telemetry.context import (
    message_parent,
    publisher_context,
    root_context,
    root_span_id,
    run_trace_id,
    trace_headers,
)
from legato.worker.execute import StepOutcome
from legato.worker.middleware import Next, StepCall

_NS = 1_000_000_000

_forced_ids: ContextVar[tuple[int | None, int] | None] = ContextVar("legato_forced_ids", default=None)


class _RunIds(IdGenerator):
    """Random ids, except for a run's root span, whose ids are derived from the run."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        forced = _forced_ids.get()
        return forced[1] if forced is not None else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _forced_ids.get()
        if forced is not None and forced[0] is not None:
            return forced[0]
        return self._random.generate_trace_id()

    @contextlib.contextmanager
    def forcing(self, trace_id: int | None, span_id: int) -> Iterator[None]:
        token = _forced_ids.set((trace_id, span_id))
        try:
            yield
        finally:
            _forced_ids.reset(token)


def _ns(seconds: float) -> int:
    return int(seconds * _NS)


def _error_attributes(error: ErrorInfo) -> dict[str, Any]:
    return {
        "exception.type": error.type,
        "exception.message": error.message,
        "exception.stacktrace": error.traceback or "",
    }


class Tracing:
    """A tracer provider of its own, with the span processors it is given.

    Use :meth:`from_env` in a process; tests give an in-memory exporter.
    """

    def __init__(
        self,
        processors: Sequence[SpanProcessor],
        resource: Resource | None = None,
        sampler: Sampler | None = None,
        topology: Topology | None = None,
        messaging_system: str = "rabbitmq",
    ) -> None:
        self.ids = _RunIds()
        self.provider = TracerProvider(
            resource=resource or default_resource(), id_generator=self.ids, sampler=sampler
        )
        for processor in processors:
            self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("legato")
        self.topology = topology or Topology()
        self.messaging_system = messaging_system

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        topology: Topology | None = None,
        messaging_system: str = "rabbitmq",
    ) -> Tracing | None:
        """Tracing as the standard ``OTEL_*`` variables configure it; None when off.

        On when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``,
        ``console``) or an OTLP endpoint is set; the OTLP protocol is
        ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (``http/protobuf``, the
        default, or ``grpc``); endpoint, headers, timeout, sampler, batch
        sizes and resource come from their own ``OTEL_*`` variables.
        """
        exporters = exporters_from_env(env)
        if not exporters:
            return None
        return cls(
            [BatchSpanProcessor(exporter) for exporter in exporters],
            topology=topology,
            messaging_system=messaging_system,
        )

    def middleware(self) -> StepSpans:
        return StepSpans(self)

    def observer(self) -> RunSpans:
        return RunSpans(self)

    def force_flush(self, timeout: float = 10.0) -> bool:
        return self.provider.force_flush(int(timeout * 1000))

    def shutdown(self) -> None:
        """Export what is buffered and stop; call once when the process stops."""
        self.provider.shutdown()

    # -- emitting -------------------------------------------------------------

    def emit(
        self,
        name: str,
        run: Run,
        start: float,
        end: float,
        attributes: Mapping[str, Any],
        error: str | None = None,
        events: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> None:
        """A finished span of ``run``, under its root, with times from its history."""
        parent = trace.set_span_in_context(NonRecordingSpan(root_context(run)))
        span = self.tracer.start_span(
            name, context=parent, start_time=_ns(start), attributes={**run_attributes(run), **attributes}
        )
        for event_name, event_attributes in events:
            span.add_event(event_name, dict(event_attributes), timestamp=_ns(start))
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=_ns(max(end, start)))

    def emit_root(self, run: Run, end: float) -> None:
        """The run's root span, from its start to ``end``, with the ids every span expects."""
        publisher = publisher_context(run)
        parent = trace.set_span_in_context(NonRecordingSpan(publisher)) if publisher else None
        trace_id = None if publisher else run_trace_id(run.id)
        with self.ids.forcing(trace_id, root_span_id(run.id)):
            span = self.tracer.start_span(
                f"run {run.workflow}",
                context=parent if parent is not None else trace.set_span_in_context(trace.INVALID_SPAN),
                kind=SpanKind.CONSUMER,
                start_time=_ns(run.created_at),
                attributes={
                    **run_attributes(run),
                    "legato.run.status": run.status.value,
                    "legato.run.priority": run.priority,
                    "legato.run.duration": max(0.0, end - run.created_at),
                    **({"legato.run.sla_met": run.sla_met} if run.sla_met is not None else {}),
                },
            )
        if run.status in (RunStatus.FAILED, RunStatus.COMPENSATED) and run.error is not None:
            span.set_attribute("error.type", run.error.type)
            span.set_status(Status(StatusCode.ERROR, f"{run.error.type}: {run.error.message}"))
        span.end(end_time=_ns(max(end, run.created_at)))


def run_attributes(run: Run) -> dict[str, Any]:
    return {
        "legato.workflow": run.workflow,
        "legato.workflow.version": run.workflow_version,
        "legato.run.id": run.id,
    }


class StepSpans:
    """Middleware: a span around every step and compensation attempt."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    async def __call__(self, call: StepCall, call_next: Next) -> StepOutcome:
        ctx = call.ctx
        compensation = ctx.kind is StepKind.COMPENSATION
        name = f"{'compensate' if compensation else 'step'} {ctx.state}"
        parent = trace.set_span_in_context(NonRecordingSpan(message_parent(call.headers, call.run)))
        token = call.run.token(ctx.seq)
        attributes: dict[str, Any] = {
            **run_attributes(call.run),
            "legato.state": ctx.state,
            "legato.step.seq": ctx.seq,
            "legato.step.kind": ctx.kind.value,
            "legato.attempt": ctx.attempt,
            "legato.handler": call.handler.name,
            "messaging.system": self.tracing.messaging_system,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": self.tracing.topology.task_queue(call.run.priority),
            "messaging.message.conversation_id": call.run.id,
        }
        with self.tracing.tracer.start_as_current_span(
            name,
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            outcome = await call_next(call)
            if token is not None:
                span.set_attribute("legato.queue_lag", max(0.0, outcome.started_at - token.since))
            if outcome.ok:
                span.set_attribute("legato.outcome", "succeeded")
            else:
                assert outcome.error is not None
                error = outcome.error
                span.set_attribute("legato.outcome", "failed")
                span.set_attribute("error.type", error.type)
                span.add_event("exception", _error_attributes(error))
                span.set_status(Status(StatusCode.ERROR, f"{error.type}: {error.message}"))
        return outcome


class RunSpans(Observer):
    """Observer: spans drawn from committed transitions, and the message headers."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    def message_headers(self, headers: MessageHeadersInput) -> Mapping[str, str]:
        return trace_headers(headers.run)

    def applied(self, applied: AppliedInput) -> None:
        decision = applied.decision
        run = decision.run
        committed = run.updated_at
        for record in decision.history:
            self._record(run, record, committed)

    def rejected(self, rejected: RejectedInput) -> None:
        run, event, reason = rejected.run, rejected.event, rejected.reason
        now = time.time()
        self.tracing.emit(
            f"rejected {event}",
            run,
            now,
            now,
            {"legato.event": event, "legato.reason": reason},
            error=reason,
        )

    def _record(self, run: Run, record: HistoryRecord, committed: float) -> None:
        draw = _SPANS[record.kind]
        if draw is not None:
            draw(self.tracing, run, record, committed)


def _state_attributes(record: HistoryRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if record.state is not None:
        attributes["legato.state"] = record.state
    if record.attempt is not None:
        attributes["legato.attempt"] = record.attempt
    return attributes


def _retry_wait(tracing: Tracing, run: Run, record: HistoryRecord, committed: float) -> None:
    delay = float(record.detail.get("delay") or 0.0)
    if delay > 0:
        at = record.at
        attributes = {**_state_attributes(record), "legato.retry.delay": delay}
        tracing.emit(f"retry wait {record.state}", run, at, at + delay, attributes)


def _wait(tracing: Tracing, run: Run, record: HistoryRecord, committed: float) -> None:
    until = record.detail.get("until")
    end = float(until) if isinstance(until, int | float) else record.at
    tracing.emit(f"wait {record.state}", run, record.at, end, _state_attributes(record))


def _timer(tracing: Tracing, run: Run, record: HistoryRecord, committed: float) -> None:
    purpose = TIMER_FIRINGS[record.kind].value
    attributes = {**_state_attributes(record), "legato.timer": purpose}
    tracing.emit(f"timer {purpose}", run, record.at, committed, attributes)


def _operator(tracing: Tracing, run: Run, record: HistoryRecord, committed: float) -> None:
    action = OPERATOR_ACTIONS[record.kind]
    detail = record.detail
    attributes = {
        **_state_attributes(record),
        "legato.action": action,
        "enduser.id": record.actor or "unknown",
    }
    if detail.get("dead_letter") is not None:
        attributes["legato.dead_letter"] = detail["dead_letter"]
    if record.kind is HistoryKind.SIGNAL_RECEIVED:
        attributes["legato.signal"] = str(detail.get("signal"))
    tracing.emit(f"operator {action}", run, record.at, committed, attributes)


def _compensation_started(tracing: Tracing, run: Run, record: HistoryRecord, committed: float) -> None:
    reason = str(record.detail.get("reason", ""))
    tracing.emit("compensation started", run, record.at, committed, {"legato.reason": reason})


def _trouble(tracing: Tracing, run: Run, record: HistoryRecord, committed: float) -> None:
    kind = record.kind.value
    reason = str(record.detail.get("reason", ""))
    tracing.emit(
        f"{kind.replace('_', ' ')} {record.state}",
        run,
        record.at,
        committed,
        {**_state_attributes(record), "legato.reason": reason},
        error=reason or kind,
    )


def _finished(tracing: Tracing, run: Run, record: HistoryRecord, committed: float) -> None:
    tracing.emit_root(run, record.at)


Draw = Callable[[Tracing, Run, HistoryRecord, float], None]


def _span_for(kind: HistoryKind) -> Draw | None:
    """The span a history line of ``kind`` draws, if any. Exhaustive, so a new
    kind is a decision here; looked up through ``_SPANS`` per line."""
    match kind:
        case HistoryKind.RETRY_SCHEDULED:
            return _retry_wait
        case HistoryKind.WAITING:
            return _wait
        case (
            HistoryKind.RETRY_STARTED
            | HistoryKind.APPROVAL_TIMED_OUT
            | HistoryKind.SLA_MISSED
            | HistoryKind.LEASE_EXPIRED
            | HistoryKind.COMPLETION_TIMED_OUT
        ):
            return _timer
        case (
            HistoryKind.OPERATOR_RETRY
            | HistoryKind.OPERATOR_SKIP
            | HistoryKind.OPERATOR_CANCEL
            | HistoryKind.OPERATOR_PAUSE
            | HistoryKind.OPERATOR_RESUME
            | HistoryKind.SIGNAL_RECEIVED
            | HistoryKind.COMPLETION_RECEIVED
        ):
            return _operator
        case HistoryKind.COMPENSATION_STARTED:
            return _compensation_started
        case HistoryKind.DEAD_LETTERED | HistoryKind.SUSPENDED:
            return _trouble
        case HistoryKind.RUN_FINISHED:
            return _finished
        case (
            HistoryKind.RUN_STARTED  # the root span is drawn when the run finishes
            | HistoryKind.RUN_RESUMED
            | HistoryKind.STEP_SCHEDULED
            | HistoryKind.STEP_SUCCEEDED  # attempts are spans of StepSpans, where they run
            | HistoryKind.STEP_FAILED
            | HistoryKind.CHOICE_MADE
            | HistoryKind.PARALLEL_STARTED
            | HistoryKind.BRANCH_COMPLETED
            | HistoryKind.JOINED
            | HistoryKind.WAIT_ELAPSED
            | HistoryKind.AWAITING_SIGNAL
            | HistoryKind.STATE_REACHED
            | HistoryKind.COMPENSATION_SCHEDULED
            | HistoryKind.COMPENSATION_SUCCEEDED
            | HistoryKind.COMPENSATION_FAILED
            | HistoryKind.MAP_STARTED  # an item's steps are spans of their own
            | HistoryKind.ITEM_SUCCEEDED
            | HistoryKind.ITEM_FAILED
            | HistoryKind.ITEM_STOPPED
            | HistoryKind.MAP_FAILING
            | HistoryKind.REJECTED  # drawn by the ``rejected`` hook
            | HistoryKind.SIGNAL_BUFFERED  # counted (drawn) once taken, as signal_received
            | HistoryKind.STEP_INTERRUPTED  # the attempt's own outcome follows
            | HistoryKind.STEP_HELD  # the pause is counted (drawn) as an operator action
            | HistoryKind.COMPLETION_AWAITED  # its attempt is counted (drawn) where it ran
            | HistoryKind.CHILD_STARTED  # the child's spans are in its own root, under this run's
            | HistoryKind.CHILD_SUCCEEDED
            | HistoryKind.CHILD_FAILED
            | HistoryKind.CHILD_CANCELLED
            | HistoryKind.CHILD_LEFT
            | HistoryKind.COMPENSATION_REQUESTED
        ):
            return None
        case _:
            assert_never(kind)


_SPANS = {kind: _span_for(kind) for kind in HistoryKind}


def default_resource(env: Mapping[str, str] | None = None) -> Resource:
    """``service.name`` legato unless ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` say."""
    values = os.environ if env is None else env
    attributes: dict[str, Any] = {
        "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
        "process.pid": os.getpid(),
    }
    if not values.get("OTEL_SERVICE_NAME") and "service.name=" not in values.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        attributes["service.name"] = "legato"
    return Resource.create(attributes)


def exporters_from_env(env: Mapping[str, str] | None = None) -> list[SpanExporter]:
    values = os.environ if env is None else env
    if values.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = values.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not named:
        endpoint = values.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or values.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        named = "otlp" if endpoint else "none"
    exporters: list[SpanExporter] = []
    for name in (n.strip() for n in named.split(",")):
        if name in ("", "none"):
            continue
        if name == "otlp":
            exporters.append(_otlp_exporter(values))
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        else:
            raise ConfigurationError(
                f"OTEL_TRACES_EXPORTER={named!r}: unknown exporter {name!r}; use otlp, console or none"
            )
    return exporters


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    raise ConfigurationError(
        f"OTLP protocol {protocol!r} is not supported; use http/protobuf (the default) or grpc"
    )
