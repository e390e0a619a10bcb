"""A run's place in a trace, computed from the run row alone.

Every run has a root span. Its ids are derived from the run: the trace id is
the publisher's (when the event carried a ``traceparent``) or else the run id
itself (a uuid is 128 bits, like a trace id), and the span id is a hash of the
run id. So any process -- a worker days later, the dashboard, the CLI -- can
place a span in the run's trace without asking anyone, and a run is found in
Jaeger by its id.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping

from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from legato.machine.run import Run

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_HEADERS = (TRACEPARENT, TRACESTATE)


def parse_traceparent(value: object, state: object = None) -> SpanContext | None:
    """The span context of a W3C ``traceparent`` header; None when it is not valid."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or parts[0] == "ff" or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    if isinstance(state, bytes):
        state = state.decode("ascii", "replace")
    trace_state = TraceState.from_header([state]) if isinstance(state, str) and state else None
    return SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags), trace_state=trace_state
    )


def format_traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags) & 0xFF:02x}"


def publisher_context(run: Run) -> SpanContext | None:
    """The span of whoever published the event that started the run, if it said."""
    carried = run.trace_context or {}
    return parse_traceparent(carried.get(TRACEPARENT), carried.get(TRACESTATE))


def root_span_id(run_id: str) -> int:
    digest = int.from_bytes(hashlib.blake2b(run_id.encode(), digest_size=8).digest(), "big")
    return digest or 1


def run_trace_id(run_id: str) -> int:
    try:
        return uuid.UUID(run_id).int or 1
    except ValueError:
        return int.from_bytes(hashlib.blake2b(run_id.encode(), digest_size=16).digest(), "big") or 1


def root_context(run: Run) -> SpanContext:
    """The context of the run's root span: the parent of every other span of the run."""
    publisher = publisher_context(run)
    if publisher is not None:
        return SpanContext(
            publisher.trace_id,
            root_span_id(run.id),
            is_remote=True,
            trace_flags=publisher.trace_flags,
            trace_state=publisher.trace_state,
        )
    return SpanContext(
        run_trace_id(run.id), root_span_id(run.id), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )


def trace_headers(run: Run) -> dict[str, str]:
    """W3C headers that place a message in the run's trace, under its root span."""
    context = root_context(run)
    headers = {TRACEPARENT: format_traceparent(context)}
    if context.trace_state:
        headers[TRACESTATE] = context.trace_state.to_header()
    return headers


def message_parent(headers: Mapping[str, object], run: Run) -> SpanContext:
    """The parent of a span that processes a message: what its headers say, when
    that is in the run's trace; the run's root span otherwise (messages from
    before tracing was turned on, or from a publisher that dropped headers)."""
    root = root_context(run)
    carried = parse_traceparent(headers.get(TRACEPARENT), headers.get(TRACESTATE))
    if carried is not None and carried.trace_id == root.trace_id:
        return carried
    return root
