"""Weighted picking across queues: stride scheduling.

Every queue has a weight; with work waiting everywhere, a queue of weight 8
gets 8 picks for every 4 of a queue of weight 4 and every 1 of a queue of
weight 1. The lightest queue still moves, so nothing is starved, and a queue
that was idle rejoins at the current virtual time: it neither hoards credit
nor pays for the time it had no work. The dispatcher uses it to hand out
concurrency slots, and each flow-control bucket to admit its waiting steps.

Each queue has two lanes, both first in first out: items pushed ``front``
(continuations of runs in progress, steps coming back from a limit) go before
the rest of their queue, in the order they came.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")

DEFAULT_WEIGHTS = {"high": 8, "normal": 4, "low": 1}


def weights_by_level(weights: dict[str, int]) -> Callable[[str], int]:
    """Weigh a queue by its last name part: ``ns.tasks.high`` weighs ``weights["high"]``."""

    def weight_of(queue: str) -> int:
        return weights.get(queue.rsplit(".", 1)[-1], weights["normal"])

    return weight_of


class Stride(Generic[Item]):
    def __init__(self, weight_of: Callable[[str], int]) -> None:
        self.weight_of = weight_of
        self._queues: dict[str, deque[Item]] = {}
        self._ahead: dict[str, deque[Item]] = {}
        self._pass: dict[str, float] = {}
        self._stride: dict[str, float] = {}
        self._virtual_time = 0.0

    def push(self, queue: str, item: Item, front: bool = False) -> None:
        if queue not in self._queues:
            self._queues[queue] = deque()
            self._ahead[queue] = deque()
            self._stride[queue] = 1.0 / self.weight_of(queue)
            self._pass[queue] = self._virtual_time
        if not self._queues[queue] and not self._ahead[queue]:
            self._pass[queue] = max(self._pass[queue], self._virtual_time)
        (self._ahead if front else self._queues)[queue].append(item)

    def pick(self) -> Item | None:
        candidates = [q for q, items in self._queues.items() if items or self._ahead[q]]
        if not candidates:
            return None
        # Lowest pass first; on a tie, the heavier queue (higher priority).
        queue = min(candidates, key=lambda q: (self._pass[q], -self.weight_of(q)))
        self._virtual_time = self._pass[queue]
        self._pass[queue] += self._stride[queue]
        ahead = self._ahead[queue]
        return ahead.popleft() if ahead else self._queues[queue].popleft()

    def drain(self) -> list[Item]:
        left = [item for lanes in (self._ahead, self._queues) for items in lanes.values() for item in items]
        for lanes in (self._ahead, self._queues):
            for items in lanes.values():
                items.clear()
        return left

    def __len__(self) -> int:
        return sum(len(items) for items in self._queues.values()) + sum(len(a) for a in self._ahead.values())
