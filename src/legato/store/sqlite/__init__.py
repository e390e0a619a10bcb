"""The SQLite backend of the store's ports (the embedded default)."""

from legato.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
