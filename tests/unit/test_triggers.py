"""How an event's priority and idempotency key are read."""

from __future__ import annotations

import pytest

from legato.machine.definition import Priority
from legato.worker.triggers import event_priority, trace_context


@pytest.mark.parametrize(
    ("headers", "amqp", "expected"),
    [
        ({}, None, None),
        ({}, 0, None),  # what aio-pika reports when the publisher set no priority
        ({}, 3, Priority.NORMAL),
        ({}, 5, Priority.HIGH),
        ({}, 255, Priority.HIGH),
        ({"x-legato-priority": "low"}, 9, Priority.LOW),
        ({"x-legato-priority": b"high"}, None, Priority.HIGH),
        ({"x-legato-priority": "2"}, None, Priority.HIGH),
    ],
)
def test_event_priority(headers: dict[str, object], amqp: int | None, expected: Priority | None) -> None:
    assert event_priority(headers, amqp) is expected


def test_a_bad_priority_header_is_an_error_that_names_the_levels() -> None:
    with pytest.raises(ValueError, match="unknown priority 'urgent'; use one of low, normal, high"):
        event_priority({"x-legato-priority": "urgent"}, None)


@pytest.mark.parametrize("value", [True, False, 1.0, 7, -1, b"\xff", ["high"], {"a": 1}, "", "\x00"])
def test_a_priority_header_that_is_no_priority_is_refused(value: object) -> None:
    """``True`` is an int to Python, not "normal": every invalid value is refused alike."""
    with pytest.raises(ValueError, match="priority"):
        event_priority({"x-legato-priority": value}, None)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, True),
        ({"traceparent": b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, True),
        ({"traceparent": "00-\x00"}, False),
        ({"traceparent": b"\xff\xfe"}, False),
        ({"traceparent": 7}, False),
        ({"traceparent": "caf\u00e9"}, False),
    ],
)
def test_only_trace_headers_that_can_be_one_are_kept(headers: dict[str, object], expected: bool) -> None:
    assert bool(trace_context(headers)) is expected
