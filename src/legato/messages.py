"""The wire format of task messages: small, ids only (claim check).

Payloads stay in the database; a task message names the run, the step visit
(``seq``) and the attempt, which is all a worker needs to find the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from legato.errors import LegatoError
from legato.machine.run import StepKind
from legato.machine.values import unstorable


class MalformedMessage(LegatoError):
    """A message body cannot be decoded; it goes to the dead-letter queue."""


@dataclass(frozen=True, slots=True)
class TaskMessage:
    run_id: str
    seq: int
    state: str
    attempt: int
    kind: StepKind
    version: int

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "run": self.run_id,
                "seq": self.seq,
                "state": self.state,
                "attempt": self.attempt,
                "kind": self.kind.value,
                "v": self.version,
            }
        )

    @classmethod
    def decode(cls, body: bytes) -> TaskMessage:
        try:
            raw: Any = orjson.loads(body)
            return cls(
                run_id=str(raw["run"]),
                seq=int(raw["seq"]),
                state=str(raw["state"]),
                attempt=int(raw["attempt"]),
                kind=StepKind(raw.get("kind", "step")),
                version=int(raw.get("v", 0)),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"not a legato task message: {exc}") from exc


def decode_json_object(body: bytes) -> dict[str, Any]:
    """Decode an event body; it must be a JSON object."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedMessage(f"body must be a JSON object, got {type(value).__name__}")
    problem = unstorable(value)
    if problem is not None:
        raise MalformedMessage(f"body cannot be stored: {problem}")
    return value
