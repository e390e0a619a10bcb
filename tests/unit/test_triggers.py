"""How an event's priority and idempotency key are read."""

from __future__ import annotations

import pytest

from legato.machine.definition import Priority
from legato.worker.triggers import event_priority


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
