"""Every message ends as a run or a dead letter, whatever its bytes.

Hypothesis draws events and signal messages -- arbitrary bodies (raw NUL bytes,
bytes that are no UTF-8, JSON with NUL escapes, wrong shapes), content types,
message ids and header values (booleans, numbers, bytes, text with NUL, lists)
-- and publishes them to a real worker on real RabbitMQ and Postgres. Each must
become exactly one run or exactly one dead letter with a reason, and the
worker must neither stop nor spin: it sees each message about once, and logs
a line or so per message, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from legato import App, StepContext, Task, Workflow
from legato.broker.base import SIGNAL_ROUTING_KEY, Delivery, DeliveryHandler, Topology
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.store.base import RunQuery
from legato.store.postgres import PostgresStore
from legato.worker.runtime import Worker, WorkerSettings
from tests.conftest import AMQP_URL
from tests.integration.harness import eventually, running

EVENT = "prop.event"


async def noop(ctx: StepContext) -> None:
    return None


APP = App([Workflow("prop", start="a", triggers=(EVENT,), states={"a": Task(noop)})])

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
"""Any text AMQP can carry (UTF-8): NUL, controls, markup included."""
scalars = st.one_of(
    st.booleans(),
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    # What the client encodes a float header as; RabbitMQ closes a publisher's
    # connection on a NaN or infinite one (INTERNAL_ERROR): none reaches a worker.
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    text,
    st.binary(max_size=20).map(bytearray),  # what AMQP calls a byte array
)
header_values = st.one_of(scalars, st.lists(scalars, max_size=3))
priorities = st.one_of(
    st.sampled_from(["low", "normal", "high", "0", "2", "urgent", "", "\x00"]),
    st.booleans(),
    st.integers(min_value=-3, max_value=9),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.binary(max_size=5).map(bytearray),
)
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)
bodies = st.one_of(
    st.binary(max_size=60),
    st.dictionaries(text, json_values, max_size=4).map(orjson.dumps),
    json_values.map(orjson.dumps),
    st.sampled_from([b'{"a": "x\x00y"}', b'{"a": "x\\u0000y"}', b"\xff\xfe{}", b"{}", b"[]", b"null"]),
)
signal_bodies = st.one_of(
    bodies,
    st.fixed_dictionaries(
        {"run_id": st.one_of(st.uuids().map(str), text), "name": text},
        optional={
            "data": json_values,
            "early": st.one_of(text, st.sampled_from(["buffer", "refuse"])),
            "actor": json_values,
        },
    ).map(orjson.dumps),
)


@dataclass
class Message:
    tag: str
    """A uuid in the message id, to find what became of the message."""
    routing_key: str
    body: bytes
    content_type: str | None
    message_id: str
    headers: dict[str, Any]


@st.composite
def messages(draw: st.DrawFn) -> Message:
    signal = draw(st.booleans())
    tag = uuid.uuid4().hex
    headers = draw(st.dictionaries(text.filter(bool), header_values, max_size=3))
    if draw(st.booleans()):
        headers["x-legato-priority"] = draw(priorities)
    if draw(st.booleans()):
        headers["traceparent"] = draw(st.one_of(text, st.binary(max_size=10).map(bytearray)))
    return Message(
        tag=tag,
        routing_key=SIGNAL_ROUTING_KEY if signal else EVENT,
        body=draw(signal_bodies if signal else bodies),
        content_type=draw(st.one_of(st.none(), st.sampled_from(["application/json", "text/plain"]), text)),
        message_id=tag + draw(text),
        headers=headers,
    )


class CountingBroker(RabbitMQBroker):
    """The real broker; it counts the deliveries of events and signals handed to the worker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deliveries = 0

    async def consume(self, on_delivery: DeliveryHandler, prefetch: int, waiting_room: int = 0) -> None:
        def counted(delivery: Delivery) -> None:
            self.deliveries += delivery.queue in self.topology.event_queues
            on_delivery(delivery)

        await super().consume(counted, prefetch, waiting_room)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Bench:
    store: PostgresStore
    broker: CountingBroker
    worker: Worker
    publisher: aio_pika.abc.AbstractExchange
    log: Records
    published: int = 0
    seen: set[str] = field(default_factory=set)


@pytest.fixture
async def bench(pg_store: PostgresStore, namespace: str) -> AsyncIterator[Bench]:

    broker = CountingBroker(AMQP_URL, Topology(namespace))
    await broker.connect()
    log = Records()
    logger = logging.getLogger("legato")
    logger.addHandler(log)
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(broker.topology.events_exchange)
        worker = Worker(APP, pg_store, broker, WorkerSettings(concurrency=8, timer_poll_interval=0.05))
        # Its own task, not a task group across the yield: the fixture's set-up
        # and tear-down run in different tasks.
        serving = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.started.wait(), 10)
        yield Bench(pg_store, broker, worker, exchange, log)
        worker.stop()
        await asyncio.wait_for(serving, 30)  # a worker that died raises here
    finally:
        logger.removeHandler(log)
        await connection.close()
        await broker.close()


async def outcomes(store: PostgresStore, tags: list[str]) -> dict[str, tuple[int, int]]:
    """Per tag: (runs, dead letters) whose key or message id carries it."""
    runs = await store.list_runs(RunQuery(limit=100_000))
    letters = await store.list_dead_letters(status=None, limit=100_000)
    found = {}
    for tag in tags:
        started = sum(1 for r in runs if r.idempotency_key and tag in r.idempotency_key)
        kept = [d for d in letters if tag in str((d.message or {}).get("message_id"))]
        assert all(d.reason for d in kept)
        found[tag] = (started, len(kept))
    return found


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(messages(), min_size=1, max_size=5))
async def test_every_message_becomes_one_run_or_one_dead_letter(bench: Bench, batch: list[Message]) -> None:
    for message in batch:
        await bench.publisher.publish(
            aio_pika.Message(
                message.body,
                content_type=message.content_type,
                message_id=message.message_id,
                headers=message.headers,
            ),
            routing_key=message.routing_key,
        )
    bench.published += len(batch)
    tags = [m.tag for m in batch]

    async def settled() -> dict[str, tuple[int, int]] | None:
        found = await outcomes(bench.store, tags)
        return found if all(sum(pair) for pair in found.values()) else None

    found = await eventually(settled, timeout=30, interval=0.05)
    for message in batch:
        assert sum(found[message.tag]) == 1, (message, found[message.tag])
        if message.routing_key == SIGNAL_ROUTING_KEY:
            assert found[message.tag] == (0, 1), message  # to no run there is
        if isinstance(message.headers.get("x-legato-priority"), bool):
            assert found[message.tag] == (0, 1), message  # refused like any invalid value
    # Neither stopped nor spinning: every delivery once (a bug would take two),
    # about one log line per message, no traceback.
    assert bench.worker.consuming
    assert bench.broker.deliveries <= bench.published
    assert len(bench.log.records) <= 3 * bench.published
    assert not [r for r in bench.log.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in bench.log.records if r.levelno >= logging.ERROR
    ]


async def test_a_poison_body_is_kept_and_replayed_byte_for_byte(
    pg_store: PostgresStore, namespace: str
) -> None:
    """The raw NUL of issue 10 (and bytes that are no UTF-8): recorded at once,
    and a replay publishes exactly the bytes that came."""

    body = b'{"a": "x\x00y"}\xff'
    broker = RabbitMQBroker(AMQP_URL, Topology(namespace))
    await broker.connect()
    try:
        async with running(APP, pg_store, broker, WorkerSettings(concurrency=2, timer_poll_interval=0.05)):
            await broker.publish_event(EVENT, body, message_id="nul-1")
            [letter] = await eventually(pg_store.list_dead_letters, timeout=30)
        assert letter.body == body
        assert "body is not valid JSON" in letter.reason
        await Client(pg_store, broker, APP, actor="ops").replay(letter.id)
        connection = await aio_pika.connect(AMQP_URL)
        try:
            channel = await connection.channel()
            queue = await channel.get_queue(broker.topology.app_queue)
            replayed = await eventually(lambda: queue.get(fail=False), timeout=10)
            assert replayed.body == body
            assert replayed.message_id == "nul-1"
            await replayed.ack()
        finally:
            await connection.close()
    finally:
        await broker.close()
