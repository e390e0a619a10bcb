"""A map's items on every backend: one row per finished item, results gathered in item
order at the join, the run's data read back with them."""

from __future__ import annotations

from typing import Any

from legato import Branch, Map, Task, Workflow
from legato.machine.commands import Decision, DispatchStep
from legato.machine.decide import decide, start_run
from legato.machine.events import StepFailed, StepSucceeded
from legato.machine.run import Run
from legato.store.base import Applied
from legato.store.ports import Store
from legato.store.rows import new_run_id
from tests.contract.workflow import NOW
from tests.unit.sim import boom


def h(ctx: Any) -> None:
    return None


MAPPED = Workflow(
    "mapped",
    start="each",
    states={
        "each": Map(
            "lines",
            Branch("work", {"work": Task(h)}),
            next="after",
            max_concurrency=2,
            tolerated_failures=1,
            output_key="reserved",
        ),
        "after": Task(h),
    },
)


async def _apply(store: Store, run: Run, event: StepSucceeded | StepFailed) -> Run:
    decision = decide(MAPPED, run, event, NOW + run.version)
    assert isinstance(decision, Decision), decision
    applied = await store.apply(decision)
    assert isinstance(applied, Applied)
    return applied.run


def _dispatched(run: Run, state: str) -> list[int]:
    return [t.seq for t in run.tokens if t.state == state]


async def test_items_are_rows_and_the_join_gathers_them_in_item_order(store: Store) -> None:
    decision = start_run(MAPPED, new_run_id(), {"lines": ["a", "b", "c"]}, NOW)
    run = (await store.create_run(decision)).run
    first, second = _dispatched(run, "work")
    # The second item finishes first; then the first fails (tolerated); the third starts.
    run = await _apply(store, run, StepSucceeded(second, 1, {"sku": "b"}))
    [third] = [s for s in _dispatched(run, "work") if s != first]
    run = await _apply(store, run, StepFailed(first, 1, boom(), non_retryable=True))
    holder = next(t for t in run.tokens if t.map is not None)
    assert "reserved" not in run.data
    run = await _apply(store, run, StepSucceeded(third, 1, {"sku": "c"}))

    assert run.data["reserved"] == [None, {"sku": "b"}, {"sku": "c"}]
    loaded = await store.load_run(run.id)
    assert loaded is not None
    assert loaded.data["reserved"] == [None, {"sku": "b"}, {"sku": "c"}]
    assert _dispatched(loaded, "after")
    items = await store.map_items(run.id, holder.seq)
    assert [(i.index, i.ok, i.result) for i in items] == [
        (0, False, None),
        (1, True, {"sku": "b"}),
        (2, True, {"sku": "c"}),
    ]
    assert items[0].error is not None
    assert items[0].error["type"] == "RuntimeError"
    page = await store.map_items(run.id, holder.seq, after=0, limit=1)
    assert [i.index for i in page] == [1]


async def test_an_empty_list_goes_straight_on_with_no_results(store: Store) -> None:
    decision = start_run(MAPPED, new_run_id(), {"lines": []}, NOW)
    assert any(isinstance(c, DispatchStep) and c.state == "after" for c in decision.commands)
    created = await store.create_run(decision)
    assert created.run.data["reserved"] == []
    loaded = await store.load_run(decision.run.id)
    assert loaded is not None
    assert loaded.data["reserved"] == []
