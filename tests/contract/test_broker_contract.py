"""The broker contract: RabbitMQ and the in-process broker behave the same."""

from __future__ import annotations

import aiormq
import anyio
import orjson
import pytest

from legato.broker.base import SIGNAL_ROUTING_KEY, Broker, Delivery, Topology
from legato.broker.memory import MemoryBroker
from legato.broker.rabbitmq import RabbitMQBroker
from legato.machine.definition import Priority
from legato.store.base import OutboxMessage
from tests.conftest import AMQP_URL


class Inbox:
    """Collects deliveries; tests wait on it instead of sleeping."""

    def __init__(self) -> None:
        self.items: list[Delivery] = []
        self._changed = anyio.Event()

    def __call__(self, delivery: Delivery) -> None:
        self.items.append(delivery)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, count: int, timeout: float = 10) -> list[Delivery]:
        with anyio.fail_after(timeout):
            while len(self.items) < count:
                await self._changed.wait()
        return self.items


def task(
    body: bytes, priority: Priority = Priority.NORMAL, headers: dict[str, str] | None = None
) -> OutboxMessage:
    return OutboxMessage(0, "run", "task", body, int(priority), headers or {})


async def consuming(broker: Broker, inbox: Inbox, prefetch: int, group: anyio.abc.TaskGroup) -> None:
    group.start_soon(broker.consume, inbox, prefetch)


async def test_tasks_are_delivered_to_their_priority_queue_with_headers(broker: Broker) -> None:
    inbox = Inbox()
    await broker.publish(
        [task(b"low", Priority.LOW), task(b"high", Priority.HIGH, {"traceparent": "00-a-b-01"})]
    )
    async with anyio.create_task_group() as group:
        await consuming(broker, inbox, 10, group)
        got = await inbox.wait_for(2)
        by_body = {d.body: d for d in got}
        assert by_body[b"high"].queue == broker.topology.task_queue(Priority.HIGH)
        assert by_body[b"low"].queue == broker.topology.task_queue(Priority.LOW)
        assert by_body[b"high"].headers["traceparent"] == "00-a-b-01"
        for delivery in got:
            await delivery.ack()
        await broker.stop_consuming()


def serving(broker: Broker, app: str, events: set[str]) -> Broker:
    """``broker`` made a worker's broker of ``app`` (as the Worker does)."""
    broker.topology = broker.topology.serving(app, events)
    return broker


def another(broker: Broker, app: str, events: set[str]) -> Broker:
    """A broker of another process (another app's worker) on the same namespace."""
    topology = broker.topology.serving(app, events)
    if isinstance(broker, MemoryBroker):
        return broker.sibling(topology)
    return RabbitMQBroker(AMQP_URL, topology)


async def test_an_apps_queue_gets_its_events_signals_their_queue_and_the_rest_is_unrouted(
    broker: Broker,
) -> None:
    serving(broker, "a", {"order.placed", "order.paid"})
    await broker.bind_app()
    inbox = Inbox()
    await broker.publish_event(
        "order.placed", b'{"id": 1}', message_id="m-1", headers={"x-legato-priority": "high"}
    )
    await broker.publish_event("nobody.listens", b"{}")
    await broker.publish_event(SIGNAL_ROUTING_KEY, b'{"run_id": "r"}')
    async with anyio.create_task_group() as group:
        await consuming(broker, inbox, 10, group)
        got = {d.routing_key: d for d in await inbox.wait_for(3)}
        topology = broker.topology
        assert topology.app_queue == f"{topology.namespace}.app.a"
        assert got["order.placed"].queue == topology.app_queue
        assert got["order.placed"].message_id == "m-1"
        assert got["order.placed"].headers["x-legato-priority"] == "high"
        assert orjson.loads(got["order.placed"].body) == {"id": 1}
        assert got["nobody.listens"].queue == topology.unrouted_queue
        assert got[SIGNAL_ROUTING_KEY].queue == topology.signals_queue
        for delivery in inbox.items:
            await delivery.ack()
        await broker.stop_consuming()
    assert len(inbox.items) == 3


async def test_apps_sharing_a_namespace_each_get_only_their_events(broker: Broker) -> None:
    a = serving(broker, "a", {"order.placed", "both.want"})
    b = another(broker, "b", {"invoice.due", "both.want"})
    # A newer version of a adds an event: its queue is the same, one more binding.
    a2 = another(broker, "a", {"order.placed", "both.want", "order.returned"})
    await b.connect()
    await a2.connect()
    try:
        for one in (a, b, a2):
            await one.bind_app()
        for name in ("order.placed", "invoice.due", "both.want", "order.returned", "nobody.wants"):
            await a.publish_event(name, name.encode())
        inbox_a, inbox_b = Inbox(), Inbox()
        async with anyio.create_task_group() as group:
            await consuming(a, inbox_a, 10, group)
            await consuming(b, inbox_b, 10, group)
            # Six deliveries in all: "both.want" to each app; the unrouted one to either.
            with anyio.fail_after(10):
                while len(inbox_a.items) + len(inbox_b.items) < 6:
                    await anyio.sleep(0.02)
            with anyio.move_on_after(0.3):
                await inbox_a.wait_for(len(inbox_a.items) + 1)  # nothing more comes
            own_a = sorted(d.routing_key for d in inbox_a.items if d.queue == a.topology.app_queue)
            own_b = sorted(d.routing_key for d in inbox_b.items if d.queue == b.topology.app_queue)
            assert own_a == ["both.want", "order.placed", "order.returned"]
            assert own_b == ["both.want", "invoice.due"]
            unrouted = [d for d in inbox_a.items + inbox_b.items if d.queue == a.topology.unrouted_queue]
            assert [d.routing_key for d in unrouted] == ["nobody.wants"]
            assert len(inbox_a.items) + len(inbox_b.items) == 6
            for delivery in inbox_a.items + inbox_b.items:
                await delivery.ack()
            await a.stop_consuming()
            await b.stop_consuming()
    finally:
        await b.close()
        await a2.close()


async def test_prefetch_bounds_unsettled_deliveries_and_requeue_redelivers(broker: Broker) -> None:
    inbox = Inbox()
    await broker.publish([task(f"m{i}".encode()) for i in range(5)])
    async with anyio.create_task_group() as group:
        await consuming(broker, inbox, 2, group)
        got = await inbox.wait_for(2)
        # Two unsettled: nothing more arrives until one is settled.
        with anyio.move_on_after(0.3):
            await inbox.wait_for(3)
        assert len(inbox.items) == 2
        await got[0].requeue()
        redelivered = (await inbox.wait_for(3))[2]
        assert redelivered.body == got[0].body
        assert redelivered.redelivered
        # Five messages, one delivered twice: six deliveries in all.
        while len(inbox.items) < 6:
            for delivery in list(inbox.items):
                if not delivery.settled:
                    await delivery.ack()
            await inbox.wait_for(min(6, len(inbox.items) + 1))  # never past the total
        for delivery in inbox.items:
            await delivery.ack()
        await broker.stop_consuming()
    depths = await broker.depths()
    assert depths[broker.topology.task_queue(Priority.NORMAL)] == 0


async def test_dead_letters_carry_their_reason(broker: Broker) -> None:
    inbox = Inbox()
    await broker.publish_event("order.placed", b"{broken", message_id="m-9")
    async with anyio.create_task_group() as group:
        await consuming(broker, inbox, 10, group)
        [delivery] = await inbox.wait_for(1)
        await broker.dead_letter(delivery, "body is not valid JSON")
        await delivery.ack()
        await broker.stop_consuming()
    await broker.publish(
        [
            OutboxMessage(
                0, "run", "dead_letter", b'{"dead_letter": 1}', 1, {"x-legato-reason": "retries exhausted"}
            )
        ]
    )
    with anyio.fail_after(10):
        letters: list[tuple[bytes, object]] = []
        while len(letters) < 2:
            letters += await broker.dead_lettered()
    bodies = dict(letters)
    assert bodies[b"{broken"]["x-legato-reason"] == "body is not valid JSON"  # type: ignore[index]
    assert bodies[b"{broken"]["x-legato-routing-key"] == "order.placed"  # type: ignore[index]
    assert bodies[b'{"dead_letter": 1}']["x-legato-reason"] == "retries exhausted"  # type: ignore[index]


async def test_purging_dead_letters_keeps_the_young_ones(broker: Broker) -> None:
    import time

    await broker.publish([OutboxMessage(0, "run", "dead_letter", b"old", 1, {})])
    cutoff = time.time() + 5  # everything so far is "old"
    assert await broker.purge_dead_letters(cutoff - 3600) == 0
    assert await broker.purge_dead_letters(cutoff) == 1
    await broker.publish(
        [
            OutboxMessage(0, "run", "dead_letter", b"x", 1, {}),
            OutboxMessage(0, "run", "dead_letter", b"y", 1, {}),
        ]
    )
    with anyio.fail_after(10):
        purged = 0
        while purged < 2:
            purged += await broker.purge_dead_letters(None)
    assert await broker.dead_lettered() == []


async def test_parked_deliveries_stop_holding_back_the_queue_up_to_the_waiting_room(broker: Broker) -> None:
    await _parking(broker)


async def test_parking_works_on_quorum_queues(namespace: str) -> None:
    broker = RabbitMQBroker(AMQP_URL, Topology(namespace, "quorum"))
    await broker.connect()
    try:
        await _parking(broker)
    finally:
        await broker.close()


async def _parking(broker: Broker) -> None:
    inbox = Inbox()
    await broker.publish([task(f"m{i}".encode()) for i in range(12)])
    async with anyio.create_task_group() as group:
        group.start_soon(broker.consume, inbox, 2, 4)
        await inbox.wait_for(2)
        # Parking a delivery (it waits for a rate limit, say) lets more in.
        while sum(d.parked for d in inbox.items) < 4:
            waiting = next(d for d in inbox.items if not d.parked)
            assert await waiting.park()
            await inbox.wait_for(sum(d.parked for d in inbox.items) + 2)
        # The waiting room is full: parking is refused, and the prefetch holds again.
        held = [d for d in inbox.items if not d.parked]
        assert not await held[0].park()
        before = len(inbox.items)
        with anyio.move_on_after(0.3):
            await inbox.wait_for(before + 1)
        assert len(inbox.items) == before
        assert len(held) <= 2 + 4  # the prefetch, plus what renewing consumers may leave in hand
        # A parked delivery is still unacknowledged: settling it frees a place.
        parked = [d for d in inbox.items if d.parked]
        await parked[0].ack()
        assert await held[0].park()
        await inbox.wait_for(before + 1)
        # ... and one given back is delivered again, not lost.
        await parked[1].requeue()
        while len(inbox.items) < 13:  # twelve messages, one delivered twice
            for delivery in list(inbox.items):
                await delivery.ack()
            # The last one may have come while acking: never wait past the total.
            await inbox.wait_for(min(13, len(inbox.items) + 1))
        for delivery in inbox.items:
            await delivery.ack()
        await broker.stop_consuming()
    assert sum(d.redelivered for d in inbox.items) == 1
    assert sorted({d.body for d in inbox.items}) == sorted(f"m{i}".encode() for i in range(12))
    assert (await broker.depths())[broker.topology.task_queue(Priority.NORMAL)] == 0


async def test_depths_count_what_is_ready_now(broker: Broker) -> None:
    normal = broker.topology.task_queue(Priority.NORMAL)
    assert (await broker.depths())[normal] == 0
    await broker.publish([task(f"d{i}".encode()) for i in range(5)])
    with anyio.fail_after(10):
        while (await broker.depths())[normal] != 5:
            await anyio.sleep(0.05)  # RabbitMQ counts confirmed messages a moment later
    serving(broker, "a", {"order.placed"})
    await broker.bind_app()
    await broker.publish_event("order.placed", b"{}")
    await broker.publish_event("nobody.wants", b"{}")
    with anyio.fail_after(10):
        while (await broker.depths())[broker.topology.app_queue] != 1:
            await anyio.sleep(0.05)
        while (await broker.depths())[broker.topology.unrouted_queue] != 1:
            await anyio.sleep(0.05)


async def test_republish_sends_a_message_back_where_it_came_from(broker: Broker) -> None:
    inbox = Inbox()
    serving(broker, "a", {"order.placed"})
    await broker.bind_app()
    high = broker.topology.task_queue(Priority.HIGH)
    await broker.republish(high, "", b"task", None, {"traceparent": "00-x-y-01"})
    # An event is routed again by its name: to the app that wants it now.
    await broker.republish(broker.topology.unrouted_queue, "order.placed", b"{}", "m-7", {})
    async with anyio.create_task_group() as group:
        await consuming(broker, inbox, 10, group)
        got = await inbox.wait_for(2)
        by_body = {d.body: d for d in got}
        assert by_body[b"task"].queue == high
        assert by_body[b"task"].headers["traceparent"] == "00-x-y-01"
        assert by_body[b"{}"].queue == broker.topology.app_queue
        assert (by_body[b"{}"].routing_key, by_body[b"{}"].message_id) == ("order.placed", "m-7")
        for delivery in got:
            await delivery.ack()
        await broker.stop_consuming()


async def test_acks_of_one_turn_never_settle_a_delivery_still_held(broker: Broker) -> None:
    # RabbitMQ sends the acks of one event-loop turn together (broker/acks.py):
    # a held delivery below them must stay unsettled, and requeue as itself.
    inbox = Inbox()
    await broker.publish([task(f"m{i}".encode()) for i in range(20)])
    async with anyio.create_task_group() as group:
        await consuming(broker, inbox, 20, group)
        got = await inbox.wait_for(20)
        held, later = got[3], [d for i, d in enumerate(got) if i != 3]
        async with anyio.create_task_group() as acking:
            for delivery in later:
                acking.start_soon(delivery.ack)
        await held.requeue()
        again = (await inbox.wait_for(21))[20]
        assert (again.body, again.redelivered) == (held.body, True)
        await again.ack()
        # Nothing else comes back: every other ack reached the broker.
        with anyio.move_on_after(0.3):
            await inbox.wait_for(22)
        assert len(inbox.items) == 21
        await broker.stop_consuming()
    depths = await broker.depths()
    assert depths[broker.topology.task_queue(Priority.NORMAL)] == 0


async def test_a_namespace_of_legato_0x_is_taken_over_without_losing_an_event(namespace: str) -> None:
    """Before: ns.events (no arguments) and one ns.triggers queue bound with "#"."""
    import aio_pika

    old = Topology(namespace)
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        events = await channel.declare_exchange(
            old.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        legacy = await channel.declare_queue(
            old.legacy_triggers_queue,
            durable=True,
            arguments={"x-queue-type": "classic", "x-dead-letter-exchange": old.dead_letter_exchange},
        )
        await legacy.bind(events, routing_key="#")
        for name in ("order.placed", "nobody.wants"):
            await events.publish(aio_pika.Message(name.encode(), message_id=name), routing_key=name)
        broker = RabbitMQBroker(AMQP_URL, old.serving("a", {"order.placed"}))
        await broker.connect()
        try:
            await broker.bind_app()
            # The old queue is gone, its events routed as any event now is.
            with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
                await (await connection.channel()).declare_queue(old.legacy_triggers_queue, passive=True)
            with anyio.fail_after(10):
                while (await broker.depths())[broker.topology.unrouted_queue] != 1:
                    await anyio.sleep(0.05)
            inbox = Inbox()
            async with anyio.create_task_group() as group:
                await consuming(broker, inbox, 10, group)
                got = {d.routing_key: d for d in await inbox.wait_for(2)}
                assert got["order.placed"].queue == broker.topology.app_queue
                assert got["order.placed"].message_id == "order.placed"
                assert got["nobody.wants"].queue == broker.topology.unrouted_queue
                for delivery in inbox.items:
                    await delivery.ack()
                await broker.stop_consuming()
            # A publisher of legato 0.x declares ns.events as it always did: still accepted.
            again = await connection.channel()
            await again.declare_exchange(old.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        finally:
            await broker.close()
    finally:
        await connection.close()
