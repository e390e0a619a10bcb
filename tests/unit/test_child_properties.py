"""Child runs over random interleavings (hypothesis): a child's end is applied to
its parent exactly once, whatever is redelivered and in whatever order things
happen, and cancelling a tree of runs ends every run in it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from legato import Approval, Branch, Child, Map, ParentClose, RetryPolicy, Task, Workflow
from legato.machine.events import CancelRequested
from legato.machine.run import RunStatus
from tests.unit.tree_sim import Forest


def h(ctx: Any) -> None:
    return None


RETRY = RetryPolicy(max_attempts=2, initial_delay=1.0, jitter=0.0)


def forest(compensate: bool, close: ParentClose, blocking: bool = False) -> dict[str, Workflow]:
    """root maps over its items, a child run of mid each, and mid starts a leaf.
    A ``blocking`` leaf waits for a signal nobody sends: only a cancel ends it."""
    undo = h if compensate else None
    last = Approval("never") if blocking else Task(h)
    leaf = Workflow(
        "leaf",
        start="work",
        retry=RETRY,
        states={"work": Task(h, next="more", compensate=undo), "more": last},
    )
    mid = Workflow(
        "mid",
        start="first",
        retry=RETRY,
        states={
            "first": Task(h, next="call", compensate=undo),
            "call": Child("leaf", next="last", parent_close=close),
            "last": Task(h),
        },
    )
    root = Workflow(
        "root",
        start="each",
        retry=RETRY,
        states={
            "each": Map(
                "items",
                Branch("call", {"call": Child("mid", input={"n": "item"}, parent_close=close)}),
                next="after",
                max_concurrency=2,
                tolerated_failures=1,
            ),
            "after": Child("leaf", parent_close=close),
        },
    )
    return {"leaf": leaf, "mid": mid, "root": root}


def _mids_running(world: Forest) -> int:
    """Child runs of the root's map not finished: what max_concurrency bounds."""
    return sum(1 for r in world.runs.values() if r.workflow == "mid" and not r.finished)


def _drive(
    world: Forest, data: st.DataObject, cancel_at: int | None, compensate: bool = True, steps: int = 3000
) -> None:
    cancelled = False
    for step in range(steps):
        if cancel_at is None:
            assert _mids_running(world) <= 2  # the map's max_concurrency, a child run per item
        idle = not (world.tasks or world.notes or world.timers)
        if cancel_at is not None and not cancelled and (step >= cancel_at or idle):
            cancelled = True
            if not world.runs["root"].finished:
                world.feed("root", CancelRequested("someone", compensate=compensate))
        choices = []
        if world.tasks:
            choices.append("task")
        if world.notes:
            choices.append("note")
        if world.timers:
            choices.append("timer")
        if not choices:
            return
        what = data.draw(st.sampled_from(choices))
        if what == "task":
            index = data.draw(st.integers(0, len(world.tasks) - 1))
            compensation = world.tasks[index].step.kind.value == "compensation"
            world.run_task(index, fail=not compensation and data.draw(st.integers(0, 5)) == 5)
        elif what == "note":
            index = data.draw(st.integers(0, len(world.notes) - 1))
            world.deliver(index, redeliver=data.draw(st.integers(0, 3)) == 3)
        else:
            world.fire_timer(data.draw(st.integers(0, len(world.timers) - 1)))
    raise AssertionError("the tree did not settle")


@settings(max_examples=150, deadline=None)
@given(
    items=st.integers(0, 4),
    compensate=st.booleans(),
    close=st.sampled_from(list(ParentClose)),
    data=st.data(),
)
def test_a_child_end_is_applied_to_its_parent_exactly_once(
    items: int, compensate: bool, close: ParentClose, data: st.DataObject
) -> None:
    world = Forest(forest(compensate, close))
    world.start("root", {"items": list(range(items))})
    _drive(world, data, cancel_at=None)
    assert world.runs["root"].finished
    assert all(count == 1 for count in world.applied_ends.values()), world.applied_ends
    for run in world.runs.values():
        assert run.finished, (run.id, run.workflow, run.status)
        if run.parent is not None and run.status is RunStatus.SUCCEEDED:
            # A child that succeeded while its parent waited was applied once.
            link = run.parent
            parent = world.runs[link.run_id]
            waited = (link.run_id, link.seq, link.attempt, link.kind) in world.applied_ends
            assert waited or parent.finished or parent.compensating


@settings(max_examples=150, deadline=None)
@given(
    items=st.integers(1, 4),
    compensate=st.booleans(),
    close=st.sampled_from(list(ParentClose)),
    cancel_at=st.integers(0, 40),
    unwind=st.booleans(),
    data=st.data(),
)
def test_cancelling_a_tree_ends_every_run_in_it(
    items: int, compensate: bool, close: ParentClose, cancel_at: int, unwind: bool, data: st.DataObject
) -> None:
    # The leaves wait for a signal that never comes: only the cancel can end the tree.
    world = Forest(forest(compensate, close, blocking=True))
    world.start("root", {"items": list(range(items))})
    _drive(world, data, cancel_at=cancel_at, compensate=unwind)
    root = world.runs["root"]
    assert root.finished
    assert all(count == 1 for count in world.applied_ends.values())
    left = [run for run in world.runs.values() if not run.finished]
    if close is ParentClose.CANCEL:
        assert not left, [(r.workflow, r.status) for r in left]
    else:
        # Left running by policy: leaves wait for their signal, the runs above them for the leaves.
        waiting = {"leaf": "more", "mid": "call"}
        assert all(waiting[r.workflow] in r.current_states for r in left), [
            (r.workflow, r.status) for r in left
        ]
