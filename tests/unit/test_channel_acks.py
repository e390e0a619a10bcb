"""Which frames a turn's acks become (broker/acks.py): one ``multiple`` ack below
the lowest delivery still held, single acks above it."""

from __future__ import annotations

from typing import Any, cast

import anyio
from aiormq.abc import AbstractChannel
from hypothesis import given
from hypothesis import strategies as st

from legato.broker.acks import ChannelAcks


class Frames:
    """Records the frames a channel would send, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, bool]] = []

    async def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.sent.append(("ack", tag, multiple))

    async def basic_nack(self, tag: int, requeue: bool = True) -> None:
        self.sent.append(("nack", tag, False))


def _acks() -> tuple[ChannelAcks, Frames]:
    frames = Frames()
    return ChannelAcks(cast(AbstractChannel, cast(Any, frames))), frames


def settled_by(sent: list[tuple[str, int, bool]], delivered: set[int]) -> set[int]:
    """What the broker considers settled after ``sent``, as RabbitMQ applies frames."""
    open_tags = set(delivered)
    done: set[int] = set()
    for kind, tag, multiple in sent:
        assert tag in open_tags, f"{kind} {tag} of a tag already settled: the channel would close"
        covered = {t for t in open_tags if t <= tag} if multiple else {tag}
        open_tags -= covered
        done |= covered
    return done


async def test_acks_in_one_turn_become_one_multiple_ack() -> None:
    acks, frames = _acks()
    for tag in range(1, 11):
        acks.delivered(tag)
    async with anyio.create_task_group() as group:
        for tag in range(1, 11):
            group.start_soon(acks.ack, tag)
    assert frames.sent == [("ack", 10, True)]


async def test_a_held_delivery_splits_the_acks() -> None:
    acks, frames = _acks()
    for tag in range(1, 8):
        acks.delivered(tag)
    async with anyio.create_task_group() as group:
        for tag in (1, 2, 3, 5, 7):
            group.start_soon(acks.ack, tag)
    assert frames.sent == [("ack", 3, True), ("ack", 5, False), ("ack", 7, False)]
    await acks.requeue(4)
    await acks.ack(6)
    assert frames.sent[3:] == [("nack", 4, False), ("ack", 6, False)]
    assert settled_by(frames.sent, set(range(1, 8))) == set(range(1, 8))


@given(
    st.lists(st.integers(1, 40), unique=True, min_size=1),
    st.lists(st.lists(st.sampled_from(["ack", "requeue"]), min_size=1, max_size=5), min_size=1, max_size=8),
    st.randoms(),
)
def test_every_settlement_reaches_the_broker_once_and_nothing_else(
    tags: list[int], turns: list[list[str]], random: Any
) -> None:
    async def scenario() -> None:
        acks, frames = _acks()
        for tag in sorted(tags):
            acks.delivered(tag)
        pending = list(tags)
        settled: set[int] = set()
        for turn in turns:
            async with anyio.create_task_group() as group:
                for action in turn:
                    if not pending:
                        break
                    tag = pending.pop(random.randrange(len(pending)))
                    settled.add(tag)
                    group.start_soon(acks.ack if action == "ack" else acks.requeue, tag)
        assert settled_by(frames.sent, set(tags)) == settled

    anyio.run(scenario)
