"""The outbox role (:class:`~legato.store.ports.OutboxStore`), on every backend."""

from __future__ import annotations

from legato.store.ports import Store
from tests.contract.workflow import NOW, started


async def test_outbox_rows_are_claimed_by_age_with_a_lease_and_deleted_when_done(store: Store) -> None:
    created = await store.create_run(started())
    assert await store.claim_outbox(NOW - 1, NOW, lease=30, limit=10) == []
    [claimed] = await store.claim_outbox(NOW + 5, NOW + 5, lease=30, limit=10)
    assert claimed.id == created.outbox[0].id
    assert await store.claim_outbox(NOW + 6, NOW + 6, lease=30, limit=10) == []
    await store.outbox_done([claimed.id])
    assert await store.claim_outbox(NOW + 100, NOW + 100, lease=30, limit=10) == []


async def test_claimed_outbox_rows_are_left_alone_until_the_claim_runs_out(store: Store) -> None:
    created = await store.create_run(started())
    [row] = created.outbox
    await store.claim_outbox_rows([row.id], NOW + 60)
    assert await store.claim_outbox(NOW + 30, NOW + 30, lease=30, limit=10) == []
    [late] = await store.claim_outbox(NOW + 61, NOW + 61, lease=30, limit=10)
    assert late.id == row.id
