"""The lifecycle role (:class:`~legato.store.ports.StoreLifecycle`), on every backend."""

from __future__ import annotations

from legato.store.ports import Store


async def test_migrate_is_idempotent(store: Store) -> None:
    assert await store.migrate() == []
