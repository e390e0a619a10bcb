"""Real workers on the real servers."""

from tests.shared_servers import broker, namespace, pg_schema, pg_store, rabbit, shared_servers, store

__all__ = ["broker", "namespace", "pg_schema", "pg_store", "rabbit", "shared_servers", "store"]
