"""The waiting room: the one owner of deliveries parked at a flow-control limit.

A step that a rate or concurrency limit refuses is *parked* here
(:meth:`WaitingRoom.park`) by the admission:

* it holds no concurrency slot -- the runner that tried it goes on to the next
  delivery;
* it stays unacknowledged, but the broker stops counting it against the
  prefetch (:meth:`Delivery.park`) as long as the broker's waiting room for its
  queue has space; on RabbitMQ by renewing the consumer (docs/flow-control.md);
* it queues at the gate that refused it. The gate's pump wakes it
  (:meth:`WaitingRoom.wake`) in priority order when a token or slot is due, and
  it goes back to the dispatcher first in its queue (:class:`Entrance`);
* on shutdown (:meth:`WaitingRoom.close`) the deliveries still waiting are
  returned, to be given back to the broker.

Everyone else asks the room: the admission for the ticket of a delivery that
comes back, the worker for what to return on shutdown. A gate orders the
tickets waiting at it but does not own them. A parked delivery tells the room
when it is settled, whoever settles it, so no record of it outlives it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from legato.broker.base import Delivery

if TYPE_CHECKING:
    from legato.flow.gates import Gate


class Entrance(Protocol):
    """Where a woken delivery goes back in (the worker's dispatcher)."""

    def resubmit(self, delivery: Delivery) -> None:
        """Take ``delivery`` back, first in its queue, and run it when a slot is free."""


class Ticket:
    """A parked step: its delivery, the gate it waits at, and how long it waited for which limit."""

    __slots__ = ("delivery", "gate", "since", "waited", "woken")

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.gate: Gate | None = None
        self.since = 0.0
        self.woken = False
        """Back in the dispatcher, on its way to try the gate again."""
        self.waited: dict[str, float] = {}

    def resume(self, now: float) -> None:
        """The step tries its limits again: count the time it waited."""
        if self.gate is not None:
            name = self.gate.name
            self.waited[name] = self.waited.get(name, 0.0) + max(0.0, now - self.since)
            self.gate = None


class WaitingRoom:
    def __init__(self, entrance: Entrance) -> None:
        self._entrance = entrance
        self._tickets: dict[Delivery, Ticket] = {}
        """Every parked delivery that is neither admitted nor settled yet."""
        self._closed = False

    @property
    def waiting(self) -> int:
        """Steps waiting at a gate right now (not the woken ones)."""
        return sum(not ticket.woken for ticket in self._tickets.values())

    def __len__(self) -> int:
        return len(self._tickets)

    def returning(self, delivery: Delivery) -> Ticket | None:
        """The ticket of a delivery coming back to its limits after a wait; None on its first try.

        The delivery leaves the room: it is admitted now, or parked again.
        """
        return self._tickets.pop(delivery, None)

    async def park(self, ticket: Ticket, gate: Gate, now: float, front: bool) -> bool:
        """Park the ticket's delivery at ``gate``; False if it cannot wait here and
        was given back to the broker instead.

        ``front``: it had waited here before, so it keeps its place ahead of newcomers.
        """
        delivery = ticket.delivery
        if delivery.local or self._closed:
            # A step this process made (eager dispatch) does not wait here: at the
            # broker, the broker's waiting room bounds it and any replica with room
            # can take it. And once the worker stops, nothing may wait any more.
            await delivery.requeue()
            return False
        ticket.gate, ticket.since, ticket.woken = gate, now, False
        self._tickets[delivery] = ticket
        await delivery.park(self)
        gate.waiters.push(delivery.queue, ticket, front=front)
        return True

    def wake(self, ticket: Ticket) -> bool:
        """The ticket's turn came at its gate: its delivery goes back to the dispatcher.

        False if it is gone meanwhile (given back on shutdown): the gate picks the next.
        """
        delivery = ticket.delivery
        if self._closed or self._tickets.get(delivery) is not ticket:
            return False
        ticket.woken = True
        self._entrance.resubmit(delivery)
        return True

    def left(self, delivery: Delivery) -> None:
        """``delivery`` was settled (:class:`~legato.broker.base.Room`): forget it."""
        ticket = self._tickets.pop(delivery, None)
        if ticket is not None and ticket.woken and ticket.gate is not None:
            # Woken, it was promised the gate's next token or slot, and settled
            # without trying (stale, say): the next waiter need not wait for the
            # promise to lapse.
            ticket.gate.changed.notify()

    def close(self) -> list[Delivery]:
        """Wake nothing and park nothing any more; return the deliveries waiting at a gate.

        The woken ones are in the dispatcher's buffers, which returns them itself.
        """
        self._closed = True
        return [ticket.delivery for ticket in self._tickets.values() if not ticket.woken]
