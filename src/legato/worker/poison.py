"""Messages that cannot be processed: recorded and dead-lettered, never dropped."""

from __future__ import annotations

import collections
import logging

from legato.broker.base import Broker, Delivery
from legato.clock import Clock
from legato.errors import BrokerError, StoreError
from legato.messages import MalformedMessage, TaskMessage
from legato.observe import Observer, PoisonedInput
from legato.store.base import PoisonedStep, PoisonMessage
from legato.store.ports import DeadLetterStore
from legato.store.rows import poison_fingerprint

log = logging.getLogger("legato.worker")


class DeadLetterNotRecorded(Exception):
    """The store refused a dead letter (not an outage: the write itself failed).

    The delivery goes back to the queue after a pause that doubles each time
    (:class:`Unrecorded`), never straight away.
    """

    def __init__(self, reason: str, error: BaseException) -> None:
        self.reason = reason
        self.error = error
        super().__init__(f"{type(error).__name__}: {error}")


async def dead_letter_message(
    delivery: Delivery, reason: str, store: DeadLetterStore, broker: Broker, clock: Clock, observer: Observer
) -> None:
    """Keep the message as a dead letter with ``reason``, then ack it.

    The record and the copy in the dead-letter queue come first; the ack last,
    so a crash in between redelivers the message instead of losing it (the
    record is idempotent on the message's fingerprint).
    """
    fingerprint = poison_fingerprint(delivery.queue, delivery.routing_key, delivery.message_id, delivery.body)
    poison = PoisonMessage(
        reason=reason,
        queue=delivery.queue,
        routing_key=delivery.routing_key,
        body=delivery.body,
        message_id=delivery.message_id,
        headers={k: _plain(v) for k, v in delivery.headers.items()},
        fingerprint=fingerprint,
        step=_step_of(delivery) if delivery.queue in broker.topology.task_queues else None,
    )
    try:
        await store.record_poison(poison, clock.now())
    except (StoreError, BrokerError):
        raise  # an outage: the delivery is given back as for any other
    except Exception as exc:
        raise DeadLetterNotRecorded(reason, exc) from exc
    await broker.dead_letter(delivery, reason)
    await delivery.ack()
    observer.poisoned(PoisonedInput(delivery.queue, reason))
    log.warning("dead-lettered a message from %s: %s", delivery.queue, reason)


class BugLedger:
    """Deliveries that met a bug in this process, so the second time is the last.

    Counted here rather than by the broker's ``redelivered`` flag, which an
    outage sets too (the delivery went back to the queue): an outage never counts
    towards dead-lettering. A delivery seen by several workers may get one try
    in each; bounded, the oldest forgotten first.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    def second_time(self, delivery: Delivery) -> bool:
        """Note a bug with ``delivery``; True when it met one here before."""
        key = _key(delivery)
        if key in self._seen:
            del self._seen[key]
            return True
        self._seen[key] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return False


class Unrecorded:
    """Deliveries whose dead letter could not be written, and how long to wait
    before giving each back: doubling from ``first`` up to ``most`` seconds.

    Such a delivery comes straight back from the broker; without a pause a
    worker would take it again at once, hundreds of times a second, each time
    with a traceback. Bounded, the oldest forgotten first.
    """

    def __init__(self, first: float = 1.0, most: float = 60.0, size: int = 10_000) -> None:
        self.first = first
        self.most = most
        self.size = size
        self._failures: collections.OrderedDict[str, int] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def failing(self, delivery: Delivery) -> bool:
        """True when the dead letter of ``delivery`` could not be written before."""
        return _key(delivery) in self._failures

    def failed(self, delivery: Delivery) -> float:
        """Note one more failure; the seconds to wait before giving it back."""
        key = _key(delivery)
        count = self._failures.pop(key, 0) + 1
        self._failures[key] = count
        if len(self._failures) > self.size:
            self._failures.popitem(last=False)
        return float(min(self.most, self.first * 2 ** min(count - 1, 32)))

    def recorded(self, delivery: Delivery) -> None:
        self._failures.pop(_key(delivery), None)


def _key(delivery: Delivery) -> str:
    return poison_fingerprint(delivery.queue, delivery.routing_key, delivery.message_id, delivery.body)


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _step_of(delivery: Delivery) -> PoisonedStep | None:
    """The step a task message names, so that its dead letter says which run it stopped."""
    try:
        task = TaskMessage.decode(delivery.body)
    except MalformedMessage:
        return None
    return PoisonedStep(task.run_id, task.state, task.seq, task.attempt)
