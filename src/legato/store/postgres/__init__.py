"""The Postgres backend of the store's ports."""

from legato.store.postgres.connection import STATEMENT_TIMEOUT
from legato.store.postgres.store import PostgresStore

__all__ = ["STATEMENT_TIMEOUT", "PostgresStore"]
