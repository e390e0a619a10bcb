"""Acks sent together: one ``basic.ack`` with ``multiple`` for a run of settled deliveries.

A busy worker settles hundreds of deliveries a second, and each ack was a frame
of its own, written to the socket by itself (a sixth of a worker's CPU on the
event path). Acks made in the same turn of the event loop go together instead:
every acked delivery whose tag is below the lowest delivery still unsettled on
the channel is covered by one ack with ``multiple`` set; acks above a delivery
still held (running, or parked in the waiting room) go one by one, so that the
held delivery is never acknowledged with them. Like the group commit, there is
no timer: the first ack of a turn yields once, and sends what the turn made.

Frames of one channel go out in order: sends and requeues take turns under a
lock, so a ``multiple`` ack can never overtake the single ack or the requeue of
a delivery it would cover (RabbitMQ closes the channel on an unknown tag).
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
from aiormq.abc import AbstractChannel


class ChannelAcks:
    """The unsettled deliveries of one AMQP channel, and the acks not sent yet."""

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self._unsettled: set[int] = set()
        self._acked: set[int] = set()
        self._queued = False
        self._lock = anyio.Lock(fast_acquire=True)

    def delivered(self, tag: int) -> None:
        self._unsettled.add(tag)

    async def ack(self, tag: int) -> None:
        """Acknowledge ``tag`` together with the other acks of this turn."""
        self._acked.add(tag)
        if self._queued:
            return  # the send queued in this turn takes it
        self._queued = True
        with anyio.CancelScope(shield=True):  # the other acks of the turn ride on it
            await anyio.lowlevel.checkpoint()  # let this turn's acks join
            async with self._lock:
                self._queued = False
                for frame_tag, multiple in self._take():
                    await self.channel.basic_ack(frame_tag, multiple=multiple)

    async def requeue(self, tag: int) -> None:
        async with self._lock:
            self._unsettled.discard(tag)
            await self.channel.basic_nack(tag, requeue=True)

    def _take(self) -> list[tuple[int, bool]]:
        """The frames for the acks made so far, forgetting them."""
        acked, self._acked = self._acked, set()
        if not acked:
            return []
        held = self._unsettled - acked
        self._unsettled = held
        below = min(held) if held else None
        covered = [t for t in acked if below is None or t < below]
        frames = [(max(covered), True)] if len(covered) > 1 else [(t, False) for t in covered]
        frames += [(t, False) for t in sorted(acked) if below is not None and t > below]
        return frames
