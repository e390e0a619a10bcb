"""The state store port and its backends (Postgres, SQLite)."""

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
    Store,
)

__all__ = [
    "Applied",
    "Conflict",
    "ConsumeTimer",
    "DeadLetterRecord",
    "DueTimer",
    "GuardFailed",
    "HistoryEntry",
    "OutboxMessage",
    "ResolveDeadLetter",
    "RunQuery",
    "Store",
]
