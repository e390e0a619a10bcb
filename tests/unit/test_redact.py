"""Secrets never printed: every form of a password in a URL, in any text, at any log level."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from legato.logs import JsonFormatter
from legato.redact import RedactingFormatter, redact, redact_logging, redact_text
from legato.worker.execute import error_info

SECRET = "hunter2"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:hunter2@db:5432/app", "postgresql://u:***@db:5432/app"),
        ("postgresql://db/app?password=hunter2", "postgresql://db/app?password=***"),
        (
            "postgresql://db/app?sslmode=require&password=hunter2",
            "postgresql://db/app?sslmode=require&password=***",
        ),
        ("postgresql://u:hunter2@db/app?sslpassword=hunter2", "postgresql://u:***@db/app?sslpassword=***"),
        ("amqp://guest:hunter2@mq:5672/?password=hunter2", "amqp://guest:***@mq:5672/?password=***"),
        ("amqps://mq/vhost?heartbeat=5&auth_token=hunter2", "amqps://mq/vhost?heartbeat=5&auth_token=***"),
        ("amqp://mq/?api_key=hunter2#frag", "amqp://mq/?api_key=***#frag"),
        ("postgresql://u:hun/ter@2@db/app", "postgresql://u:***@db/app"),
        ("postgresql://u@db/app?application_name=x", "postgresql://u@db/app?application_name=x"),
        ("memory", "memory"),
        ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
    ],
)
def test_a_url_loses_every_secret_and_keeps_the_rest(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_secrets_in_free_text_are_masked() -> None:
    text = (
        "cannot connect to postgresql://u:hunter2@db/app?password=hunter2 (dsn: host=db "
        "password=hunter2 user=u), token: 'hunter2', api_key=hunter2"
    )
    masked = redact_text(text)
    assert SECRET not in masked
    assert "postgresql://u:***@db/app?password=***" in masked
    assert "host=db" in masked
    assert "user=u" in masked


@pytest.mark.parametrize(
    "level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
)
def test_every_log_level_and_traceback_is_masked(level: int) -> None:
    logger = logging.getLogger(f"legato.test_redact.{level}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    redact_logging(logger)
    redact_logging(logger)  # idempotent: wrapped once
    assert isinstance(handler.formatter, RedactingFormatter)
    assert not isinstance(handler.formatter.inner, RedactingFormatter)
    try:
        raise ConnectionError("refused by amqp://guest:hunter2@mq/?password=hunter2")
    except ConnectionError:
        logger.log(level, "worker on %s", "postgresql://db/app?password=hunter2", exc_info=True)
    written = stream.getvalue()
    assert "worker on postgresql://db/app?password=***" in written
    assert "ConnectionError: refused by amqp://guest:***@mq/?password=***" in written
    assert SECRET not in written


def test_a_step_error_quoting_a_url_is_stored_masked() -> None:
    """The error of a step goes to the history, the dashboard, traces: masked once, at the source."""
    try:
        raise OSError("cannot reach postgresql://app:hunter2@db/orders?password=hunter2")
    except OSError as exc:
        info = error_info(exc)
    assert SECRET not in info.message
    assert SECRET not in (info.traceback or "")
    assert "postgresql://app:***@db/orders?password=***" in info.message


def test_a_log_line_carries_no_control_sequence() -> None:
    logger = logging.getLogger("legato.test_redact.controls")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    redact_logging(logger)
    logger.warning("dead-lettered: %s", "event \x1b]0;owned\x07 \x1b[2J")
    assert stream.getvalue() == "dead-lettered: event \\x1b]0;owned\\x07 \\x1b[2J\n"


def test_a_json_log_line_is_masked_and_stays_json() -> None:
    logger = logging.getLogger("legato.test_redact.json")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    redact_logging(logger)
    logger.warning("on %s, event %s", "amqp://mq/?password=hunter2", "\x1b[2J\x9b1m\u202e")
    line = orjson.loads(stream.getvalue())
    assert line["message"] == "on amqp://mq/?password=***, event \x1b[2J\x9b1m\u202e"
    assert "\x1b" not in stream.getvalue()
    assert "\x9b" not in stream.getvalue()
    assert "\u202e" not in stream.getvalue()
    assert SECRET not in stream.getvalue()
