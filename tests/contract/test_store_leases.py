"""The leases role (:class:`~legato.store.ports.LeaseStore`), on every backend."""

from __future__ import annotations

from legato.store.base import LeaseEnd
from legato.store.ports import Store
from tests.contract.workflow import NOW, started


async def _run(store: Store) -> str:
    return (await store.create_run(started())).run.id


async def heartbeat_timer(store: Store, run_id: str, at: float) -> list[tuple[str, int | None, float]]:
    due = await store.claim_timers(at, lease=30, limit=100)
    return [(t.key, t.attempt, t.fire_at) for t in due if t.run_id == run_id]


async def test_a_lease_is_held_renewed_and_its_timer_fires_only_when_it_ran_out(store: Store) -> None:
    run_id = await _run(store)
    grant = await store.acquire_lease(run_id, 1, 1, "w1", NOW, 10)
    assert grant is not None
    assert grant.details is None
    # Another worker (a redelivery) cannot take the attempt while the lease is live.
    assert await store.acquire_lease(run_id, 1, 1, "w2", NOW + 5, 10) is None
    assert await store.renew_lease(run_id, 1, 1, "w1", NOW + 8, 10, {"done": 3})
    assert await store.lease_details(run_id, 1) == {"done": 3}
    # The timer moved with the lease: nothing is due at the first expiry.
    assert await heartbeat_timer(store, run_id, NOW + 12) == []
    assert await store.expire_lease(run_id, 1, 1, NOW + 12) is False
    [(key, attempt, fire_at)] = await heartbeat_timer(store, run_id, NOW + 19)
    assert (key, attempt, fire_at) == ("heartbeat:1", 1, NOW + 18)
    # Exactly one taker per expiry; after it the holder cannot renew.
    assert await store.expire_lease(run_id, 1, 1, NOW + 19) is True
    assert await store.expire_lease(run_id, 1, 1, NOW + 19) is False
    assert not await store.renew_lease(run_id, 1, 1, "w1", NOW + 19, 10)
    # Nor can a redelivery of the same attempt take it: a new attempt is coming.
    assert await store.acquire_lease(run_id, 1, 1, "w3", NOW + 19, 10) is None
    # The next attempt takes the lease and reads what the last one reported.
    again = await store.acquire_lease(run_id, 1, 2, "w2", NOW + 20, 10)
    assert again is not None
    assert again.details == {"done": 3}


async def test_a_lease_that_ran_out_can_be_taken_over_but_not_renewed(store: Store) -> None:
    run_id = await _run(store)
    assert await store.acquire_lease(run_id, 1, 1, "w1", NOW, 10) is not None
    assert await store.acquire_lease(run_id, 1, 1, "w2", NOW + 11, 10) is not None
    assert not await store.renew_lease(run_id, 1, 1, "w1", NOW + 12, 10)
    assert await store.renew_lease(run_id, 1, 1, "w2", NOW + 12, 10)


async def test_releasing_a_lease_ends_or_keeps_it_as_the_attempt_ended(store: Store) -> None:
    done = await _run(store)
    assert await store.acquire_lease(done, 1, 1, "w1", NOW, 10) is not None
    await store.renew_lease(done, 1, 1, "w1", NOW + 1, 10, {"page": 2})
    await store.release_lease(done, 1, 1, "w1", LeaseEnd.DONE, NOW + 2)
    assert await store.lease_details(done, 1) is None
    assert await heartbeat_timer(store, done, NOW + 100) == []

    failed = await _run(store)
    assert await store.acquire_lease(failed, 1, 1, "w1", NOW, 10) is not None
    await store.renew_lease(failed, 1, 1, "w1", NOW + 1, 10, {"page": 2})
    await store.release_lease(failed, 1, 1, "w1", LeaseEnd.FAILED, NOW + 2)
    assert await heartbeat_timer(store, failed, NOW + 100) == []
    assert await store.expire_lease(failed, 1, 1, NOW + 100) is False
    assert await store.acquire_lease(failed, 1, 1, "w3", NOW + 100, 10) is None
    retried = await store.acquire_lease(failed, 1, 2, "w2", NOW + 3, 10)
    assert retried is not None
    assert retried.details == {"page": 2}

    abandoned = await _run(store)
    assert await store.acquire_lease(abandoned, 1, 1, "w1", NOW, 10) is not None
    await store.release_lease(abandoned, 1, 1, "w1", LeaseEnd.ABANDONED, NOW + 2)
    # Its timer fires at once, and it is taken once.
    [(key, _, fire_at)] = await heartbeat_timer(store, abandoned, NOW + 2)
    assert (key, fire_at) == ("heartbeat:1", NOW + 2)
    assert await store.expire_lease(abandoned, 1, 1, NOW + 2) is True
