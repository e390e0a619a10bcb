"""Search attributes and the run list's filters (RunQuery), on every backend."""

from __future__ import annotations

import asyncio

import pytest

from legato import Task, Workflow
from legato.machine.commands import Decision
from legato.machine.decide import decide, start_run
from legato.machine.events import StepSucceeded
from legato.store.base import Applied, RunQuery
from legato.store.ports import Store
from legato.store.rows import new_run_id
from tests.contract.workflow import NOW, h

ORDERS = Workflow(
    "orders",
    start="charge",
    states={"charge": Task(h, next="ship", output_key="charge"), "ship": Task(h)},
    search=("customer.id", "order_id", "charge.receipt"),
)


async def _start(store: Store, data: dict[str, object], at: float = NOW, key: str | None = None) -> str:
    decision = start_run(ORDERS, new_run_id(), data, at, idempotency_key=key)
    return (await store.create_run(decision)).run.id


async def _ids(store: Store, **filters: object) -> set[str]:
    return {r.id for r in await store.list_runs(RunQuery(**filters))}  # type: ignore[arg-type]


async def test_runs_are_found_by_their_search_attributes(store: Store) -> None:
    a = await _start(store, {"customer": {"id": 42}, "order_id": "A-1"})
    b = await _start(store, {"customer": {"id": "42"}, "order_id": "B-2"})
    c = await _start(store, {"customer": {"id": 7}, "order_id": "C-3"})
    await _start(store, {"customer": "not an object"})
    assert await _ids(store, where={"customer.id": "42"}) == {a, b}  # 42 and "42" alike
    assert await _ids(store, where={"customer.id": "42", "order_id": "B-2"}) == {b}
    assert await _ids(store, where={"order_id": "C-3"}) == {c}
    assert await _ids(store, where={"customer.id": "43"}) == set()
    assert await _ids(store, where={"unknown": "42"}) == set()
    run = await store.load_run(a)
    assert run is not None
    assert run.search == {"customer.id": "42", "order_id": "A-1", "charge.receipt": None}


async def test_a_transition_that_sets_an_attribute_makes_the_run_findable_at_once(store: Store) -> None:
    run_id = await _start(store, {"customer": {"id": 1}})
    assert await _ids(store, where={"charge.receipt": "r-9"}) == set()
    run = await store.load_run(run_id)
    assert run is not None
    decision = decide(ORDERS, run, StepSucceeded(1, 1, {"receipt": "r-9"}), NOW + 1)
    assert isinstance(decision, Decision)
    assert isinstance(await store.apply(decision), Applied)
    # Written by the transition's own statement: no later indexing to wait for.
    assert await _ids(store, where={"charge.receipt": "r-9"}) == {run_id}
    assert await _ids(store, where={"customer.id": "1", "charge.receipt": "r-9"}) == {run_id}


async def test_runs_created_together_are_found_too(store: Store) -> None:
    # Concurrent starts share a transaction on Postgres (group creation).
    ids = await asyncio.gather(*(_start(store, {"customer": {"id": n % 2}}) for n in range(8)))
    assert await _ids(store, where={"customer.id": "1"}) == set(ids[1::2])


async def test_runs_are_found_by_key_and_creation_time(store: Store) -> None:
    old = await _start(store, {}, at=NOW - 100, key="order-old")
    new = await _start(store, {}, at=NOW, key="order-new")
    assert await _ids(store, key="order-old") == {old}
    assert await _ids(store, key="nope") == set()
    assert await _ids(store, since=NOW - 50) == {new}
    assert await _ids(store, until=NOW - 50) == {old}
    assert await _ids(store, since=NOW - 100, until=NOW) == {old}
    assert await _ids(store, since=NOW - 100, until=NOW + 1, where={"customer.id": "1"}) == set()


async def test_a_malformed_path_is_refused() -> None:
    with pytest.raises(ValueError, match="empty key"):
        RunQuery(where={"customer..id": "1"})
    with pytest.raises(ValueError, match="letters, digits"):
        RunQuery(where={"customer id": "1"})
