"""The state store: its ports by role (:mod:`legato.store.ports`) and their
backends (:mod:`legato.store.postgres`, :mod:`legato.store.sqlite`)."""

from legato.store.base import (
    Applied,
    Conflict,
    ConsumeTimer,
    DeadLetterRecord,
    DueTimer,
    GuardFailed,
    HistoryEntry,
    OutboxMessage,
    ResolveDeadLetter,
    RunQuery,
)
from legato.store.ports import (
    DeadLetterStore,
    FlowStore,
    OutboxStore,
    RunStore,
    Store,
    StoreLifecycle,
    TimerStore,
    TransitionStore,
)

__all__ = [
    "Applied",
    "Conflict",
    "ConsumeTimer",
    "DeadLetterRecord",
    "DeadLetterStore",
    "DueTimer",
    "FlowStore",
    "GuardFailed",
    "HistoryEntry",
    "OutboxMessage",
    "OutboxStore",
    "ResolveDeadLetter",
    "RunQuery",
    "RunStore",
    "Store",
    "StoreLifecycle",
    "TimerStore",
    "TransitionStore",
]
