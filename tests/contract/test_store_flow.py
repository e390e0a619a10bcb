"""The flow-control part of the store contract: global buckets and slot leases, on every backend.

Time is passed in, so these tests are exact: each backend must agree with the
pure token-bucket model of :mod:`legato.machine.limits`.
"""

from __future__ import annotations

import asyncio

import pytest

from legato.machine.limits import Bucket, reserve
from legato.store.ports import Store

T0 = 1_800_000_000.0


def check_in_use(found: tuple[int, float | None], used: int, soonest: float) -> None:
    assert found[0] == used
    assert found[1] == pytest.approx(soonest)


# (seconds after T0, tokens asked for) -- rate 10/s, capacity 5.
RESERVATIONS = [
    (0.0, 3),  # a new bucket starts full: valid at once
    (0.0, 3),  # one short: valid when the refill has paid the debt (0.1 s)
    (0.1, 2),  # the debt is paid at 0.1, two more take until 0.3
    (1.0, 1),  # a quiet spell refills the bucket
    (1.0, 5),
    (0.5, 1),  # a clock that went backwards adds nothing and breaks nothing
    (10.0, 5),  # full again, never above capacity
    (10.0, 1),
]


async def test_reservations_follow_the_pure_token_bucket_model(store: Store) -> None:
    rate, capacity = 10.0, 5
    model = Bucket.full(capacity, T0)
    for offset, count in RESERVATIONS:
        now = T0 + offset
        model, expected = reserve(model, rate, capacity, now, count)
        valid_from = await store.reserve_tokens("api", count, rate, capacity, now)
        assert valid_from == pytest.approx(expected, abs=1e-5), (offset, count)
    assert expected == pytest.approx(T0 + 10.1, abs=1e-5)


async def test_buckets_are_independent(store: Store) -> None:
    assert await store.reserve_tokens("api:a", 2, 1.0, 2, T0) == pytest.approx(T0)
    assert await store.reserve_tokens("api:b", 2, 1.0, 2, T0) == pytest.approx(T0)
    assert await store.reserve_tokens("api:a", 1, 1.0, 2, T0) == pytest.approx(T0 + 1)


async def test_concurrent_reservations_never_hand_out_a_token_twice(store: Store) -> None:
    # Twenty reservations of one token each, all at the same instant, on a
    # bucket of 5 at 10/s: whatever the interleaving, they are valid at
    # 0, 0, 0, 0, 0, 0.1, 0.2, ... 1.5 -- every step of 0.1 s taken exactly once.
    results = await asyncio.gather(*(store.reserve_tokens("race", 1, 10.0, 5, T0) for _ in range(20)))
    offsets = sorted(round(r - T0, 3) for r in results)
    assert offsets == [0.0] * 5 + [round(0.1 * i, 3) for i in range(1, 16)]


async def test_slots_are_leased_up_to_the_limit_and_released(store: Store) -> None:
    assert await store.acquire_slot("psp:c1", 2, "w1", T0, 30) == 0
    assert await store.acquire_slot("psp:c1", 2, "w2", T0, 30) == 1
    assert await store.acquire_slot("psp:c1", 2, "w3", T0, 30) is None
    assert await store.acquire_slot("psp:c2", 2, "w3", T0, 30) == 0  # another key, its own slots
    check_in_use(await store.slots_in_use("psp:c1", T0 + 1), 2, T0 + 30)

    await store.release_slot("psp:c1", 0, "w2")  # not w2's slot: nothing happens
    assert await store.acquire_slot("psp:c1", 2, "w3", T0 + 1, 30) is None
    await store.release_slot("psp:c1", 0, "w1")
    assert await store.acquire_slot("psp:c1", 2, "w3", T0 + 1, 30) == 0
    assert (await store.slots_in_use("psp:c1", T0 + 1))[0] == 2


async def test_an_expired_lease_comes_back_and_renewal_keeps_a_lease(store: Store) -> None:
    assert await store.acquire_slot("k", 1, "dead", T0, 5) == 0
    assert await store.acquire_slot("k", 1, "alive", T0, 5) is None
    check_in_use(await store.slots_in_use("k", T0 + 1), 1, T0 + 5)
    assert await store.acquire_slot("k", 1, "alive", T0 + 4.9, 5) is None
    # The holder died: after its lease the slot is free for the next one.
    assert await store.acquire_slot("k", 1, "alive", T0 + 5.1, 5) == 0
    # The dead holder cannot renew what it lost; the living one can.
    assert await store.renew_slots("dead", [("k", 0)], T0 + 6) == []
    assert await store.renew_slots("alive", [("k", 0)], T0 + 9) == [("k", 0)]
    assert await store.acquire_slot("k", 1, "third", T0 + 12, 5) is None  # renewed until T0 + 14
    assert await store.acquire_slot("k", 1, "third", T0 + 14.1, 5) == 0


async def test_a_lowered_limit_counts_the_leases_above_it(store: Store) -> None:
    for holder in ("a", "b", "c"):
        assert await store.acquire_slot("shrunk", 3, holder, T0, 30) is not None
    await store.release_slot("shrunk", 0, "a")
    # Now the limit is 2: slot 0 is free, but two leases (slots 1 and 2) are live.
    assert await store.acquire_slot("shrunk", 2, "d", T0 + 1, 30) is None


async def test_racing_workers_never_lease_more_than_the_limit(store: Store) -> None:
    results = await asyncio.gather(*(store.acquire_slot("hot", 2, f"w{i}", T0, 30) for i in range(12)))
    won = [r for r in results if r is not None]
    assert sorted(won) == sorted(set(won))
    assert len(won) <= 2
    assert (await store.slots_in_use("hot", T0))[0] == len(won)


async def test_purge_forgets_full_buckets_and_expired_leases(store: Store) -> None:
    await store.reserve_tokens("quiet", 1, 1.0, 2, T0)  # full again at T0 + 1
    await store.reserve_tokens("busy", 10, 1.0, 2, T0)  # in debt until T0 + 10
    await store.acquire_slot("gone", 1, "w", T0, 5)
    await store.acquire_slot("live", 1, "w", T0, 500)
    assert await store.purge_flow_state(T0 + 6) == 2
    # A purged bucket starts full again, which is what it was.
    assert await store.reserve_tokens("quiet", 2, 1.0, 2, T0 + 6) == pytest.approx(T0 + 6)
    assert await store.reserve_tokens("busy", 1, 1.0, 2, T0 + 6) == pytest.approx(T0 + 9)
    check_in_use(await store.slots_in_use("live", T0 + 6), 1, T0 + 500)
