"""The waiting room: the one owner of parked deliveries, and nothing outlives them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import pytest

from legato.broker.base import Delivery, Topology
from legato.clock import ManualClock
from legato.flow.gates import Gate, ProcessRate
from legato.flow.stride import DEFAULT_WEIGHTS, weights_by_level
from legato.flow.waiting import Ticket, WaitingRoom
from legato.machine.limits import RateLimit
from legato.machine.run import Run
from legato.priority import Priority
from legato.worker.dispatch import Dispatcher
from legato.worker.eager import LocalDelivery

TOPOLOGY = Topology("wr")
NORMAL = TOPOLOGY.task_queue(Priority.NORMAL)


@dataclass
class Settles:
    """What happened to the deliveries, as the broker would see it."""

    acked: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)

    def delivery(self, name: str, queue: str = NORMAL, local: bool = False) -> Delivery:
        async def ack() -> None:
            self.acked.append(name)

        async def requeue() -> None:
            self.requeued.append(name)

        async def park() -> bool:
            self.parked.append(name)
            return True

        if local:
            no_run = cast(Run, None)  # never read here
            return LocalDelivery(
                queue, name.encode(), "", None, {}, None, False, ack, requeue, run=no_run, made_at=0.0
            )
        return Delivery(queue, name.encode(), "", None, {}, None, False, ack, requeue, _park=park)


@pytest.fixture
def settles() -> Settles:
    return Settles()


@pytest.fixture
def dispatcher() -> Dispatcher:
    return Dispatcher(2)


@pytest.fixture
def room(dispatcher: Dispatcher) -> WaitingRoom:
    return WaitingRoom(dispatcher)


@pytest.fixture
def gate() -> Gate:
    limit = RateLimit("api", 1, burst=1, scope="process")
    return ProcessRate(limit, "api", ManualClock(), weights_by_level(DEFAULT_WEIGHTS))


async def test_a_parked_delivery_waits_at_its_gate_outside_the_prefetch(
    room: WaitingRoom, gate: Gate, settles: Settles
) -> None:
    delivery = settles.delivery("a")
    assert await room.park(Ticket(delivery), gate, 0.0, front=False)
    assert settles.parked == ["a"]  # the broker no longer counts it against the prefetch
    assert delivery.parked
    assert not delivery.settled
    assert room.waiting == 1
    assert len(gate.waiters) == 1


@pytest.mark.parametrize("settle", ["ack", "requeue"])
async def test_settling_a_parked_delivery_leaves_no_record_of_it(
    room: WaitingRoom, gate: Gate, settles: Settles, dispatcher: Dispatcher, settle: str
) -> None:
    """Whoever settles it (a stale or poison delivery is acked, an error gives it
    back): the room forgets it without being asked."""
    woken, waiting = settles.delivery("woken"), settles.delivery("waiting")
    for delivery in (woken, waiting):
        await room.park(Ticket(delivery), gate, 0.0, front=False)
    ticket = gate.waiters.pick()
    assert ticket is not None
    assert ticket.delivery is woken
    assert room.wake(ticket)
    for delivery in (waiting, woken):
        await getattr(delivery, settle)()
    assert len(room) == 0
    assert room.waiting == 0
    assert room.returning(woken) is None
    leftover = gate.waiters.pick()
    assert leftover is not None
    assert not room.wake(leftover), "a settled delivery is not woken"
    assert dispatcher.close() == [woken]  # the one woken before it was settled, and no other


async def test_a_woken_delivery_goes_first_in_its_queue_and_brings_its_ticket(
    room: WaitingRoom, gate: Gate, settles: Settles, dispatcher: Dispatcher
) -> None:
    early, late = settles.delivery("early"), settles.delivery("late")
    dispatcher.submit(early)
    parked = settles.delivery("parked")
    ticket = Ticket(parked)
    await room.park(ticket, gate, 10.0, front=False)
    dispatcher.submit(late)
    picked = gate.waiters.pick()
    assert picked is ticket
    assert room.wake(ticket)
    assert room.waiting == 0
    assert len(room) == 1
    assert dispatcher.close() == [parked, early, late]
    back = room.returning(parked)
    assert back is ticket
    back.resume(12.5)
    assert back.waited == {"api": 2.5}
    assert len(room) == 0  # it is admitted now, or parked again


async def test_shutdown_returns_the_waiting_deliveries_and_then_nothing_waits(
    room: WaitingRoom, gate: Gate, settles: Settles, dispatcher: Dispatcher
) -> None:
    first, second = settles.delivery("first"), settles.delivery("second")
    for delivery in (first, second):
        await room.park(Ticket(delivery), gate, 0.0, front=False)
    woken = gate.waiters.pick()
    assert woken is not None
    assert room.wake(woken)
    left = room.close() + dispatcher.close()
    assert sorted(d.body for d in left) == [b"first", b"second"]  # each once: woken or waiting
    late = settles.delivery("late")
    assert not await room.park(Ticket(late), gate, 0.0, front=False)
    assert settles.requeued == ["late"], "parked after the close: given back at once"
    still = gate.waiters.pick()
    assert still is not None
    assert not room.wake(still), "nothing is woken after the close"


async def test_a_local_step_does_not_wait_here(room: WaitingRoom, gate: Gate, settles: Settles) -> None:
    local = settles.delivery("local", local=True)
    assert not await room.park(Ticket(local), gate, 0.0, front=False)
    assert settles.requeued == ["local"]
    assert settles.parked == []
    assert len(room) == 0
    assert len(gate.waiters) == 0
