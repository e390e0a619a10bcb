"""Outbox messages: what a transition commits for the broker to publish.

The store keeps them (in the transition's transaction) and the broker
publishes them. They live apart from both, importing nothing of legato, so
the broker needs nothing of the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message committed with a transition, to publish after the commit.

    ``kind`` is ``task`` (to a task queue, by ``priority``) or ``dead_letter``
    (to the dead-letter exchange).
    """

    id: int
    run_id: str
    kind: str
    body: bytes
    priority: int
    headers: Mapping[str, str] = field(default_factory=dict)
