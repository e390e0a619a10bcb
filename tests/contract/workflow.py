"""The workflow the store's role suites drive: two steps with retries, then an approval."""

from __future__ import annotations

from typing import Any

from legato import Approval, RetryPolicy, Task, Workflow
from legato.machine.commands import Decision
from legato.machine.decide import start_run
from legato.store.rows import new_run_id


def h(ctx: Any) -> None:
    return None


WF = Workflow(
    "contract",
    start="a",
    retry=RetryPolicy(max_attempts=2, initial_delay=5, jitter=0),
    states={"a": Task(h, next="b"), "b": Task(h, next="gate"), "gate": Approval("go", timeout=60)},
)
NOW = 1_800_000_000.0


def started(key: str | None = None, data: dict[str, Any] | None = None) -> Decision:
    return start_run(WF, new_run_id(), data or {"order": 1}, NOW, idempotency_key=key)
