"""Notices: the outbox messages between a parent run and its child runs.

A child run's end, and a parent's wish to cancel or compensate a child, are
committed with the transition that causes them, as outbox rows of kind
``notice``, and published to the task queues like task messages; any worker
takes one and applies it as an event to the run it names (worker/notices.py).
Like a task message, a notice carries ids only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from legato.machine.run import StepKind
from legato.messages import MalformedMessage

OUTBOX_KIND = "notice"
"""The outbox ``kind`` of a notice (published to the task queue of its priority)."""

_PREFIX = b'{"notice":'


class NoticeKind(StrEnum):
    CHILD_ENDED = "child_ended"
    """``run`` is the parent, ``source`` the child that ended."""
    CANCEL_CHILD = "cancel_child"
    """``run`` is the child to cancel, ``source`` its parent."""
    COMPENSATE_CHILD = "compensate_child"
    """``run`` is the (succeeded) child to compensate, ``source`` its parent."""


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    run_id: str
    """The run the notice is for."""
    source: str
    """The run that sent it."""
    seq: int = 0
    """The parent's step (token) the child reports to."""
    attempt: int = 0
    step_kind: StepKind = StepKind.STEP
    reason: str = ""

    def encode(self) -> bytes:
        # "notice" first: that is how a worker tells a notice from a task message.
        return orjson.dumps(
            {
                "notice": self.kind.value,
                "run": self.run_id,
                "from": self.source,
                "seq": self.seq,
                "attempt": self.attempt,
                "kind": self.step_kind.value,
                "reason": self.reason,
            }
        )

    @classmethod
    def decode(cls, body: bytes) -> Notice:
        try:
            raw: Any = orjson.loads(body)
            return cls(
                kind=NoticeKind(raw["notice"]),
                run_id=str(raw["run"]),
                source=str(raw["from"]),
                seq=int(raw.get("seq", 0)),
                attempt=int(raw.get("attempt", 0)),
                step_kind=StepKind(raw.get("kind", "step")),
                reason=str(raw.get("reason", "")),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"not a legato notice: {exc}") from exc


def is_notice(body: bytes) -> bool:
    return body.startswith(_PREFIX)
