"""The lifecycle role (:class:`~legato.store.ports.StoreLifecycle`), on every backend."""

from __future__ import annotations

import pytest

from legato.errors import StoreError
from legato.store.ports import Store


async def test_migrate_is_idempotent(store: Store) -> None:
    assert await store.migrate() == []


async def test_opens_are_counted_and_the_last_close_disconnects(store: Store) -> None:
    await store.ping()
    await store.open()  # a second user, say a client beside the worker
    await store.close()
    await store.ping()  # the first user's open still holds
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()
    await store.open()  # for the fixture's close
    await store.ping()
