"""The child state in the pure core: registration, the child's input and key,
its outcome, retries as new children, parent-close policies and compensation."""

from __future__ import annotations

from typing import Any

import pytest

from legato import App, Child, ParentClose, RetryPolicy, RunStatus, Task, Workflow
from legato.errors import DefinitionError
from legato.machine.child import child_key, child_run_id
from legato.machine.commands import CancelChild, CompensateChild, Rejection, StartChild
from legato.machine.events import CancelRequested, ChildEnded
from legato.machine.vocabulary import HistoryKind
from tests.unit.tree_sim import Forest


def h(ctx: Any) -> None:
    return None


def child_wf(**states: Any) -> Workflow:
    return Workflow(
        "line",
        start="reserve",
        retry=RetryPolicy(max_attempts=1),
        states=states or {"reserve": Task(h, compensate=h)},
    )


def parent_wf(**options: Any) -> Workflow:
    return Workflow(
        "order",
        start="call",
        retry=options.pop("retry", RetryPolicy(max_attempts=2, initial_delay=1.0, jitter=0.0)),
        states={
            "call": Child("line", next="after", input={"sku": "line.sku"}, output_key="line", **options),
            "after": Task(h),
        },
    )


def world(**options: Any) -> Forest:
    forest = Forest({"line": child_wf(), "order": parent_wf(**options)})
    forest.start("order", {"line": {"sku": "apple", "qty": 2}, "other": 1}, run_id="p")
    return forest


def test_entering_a_child_state_starts_one_child_with_the_mapped_input_and_a_key_per_attempt() -> None:
    forest = world()
    [start] = [c for c in forest.commands["p"] if isinstance(c, StartChild)]
    assert start.child == child_run_id("p", start.seq, 1)
    assert start.key == child_key("line", "p", start.seq, 1)
    child = forest.runs[start.child]
    assert child.input == {"sku": "apple"}
    assert child.parent is not None
    assert (child.parent.run_id, child.parent.seq) == ("p", start.seq)
    assert forest.runs["p"].token(start.seq).child == start.child  # type: ignore[union-attr]


def test_the_child_output_is_merged_where_the_state_says_and_applied_once() -> None:
    forest = world()
    [child_id] = [r for r in forest.runs if r != "p"]
    forest.run_task(0, fail=False)  # the child's reserve
    assert forest.runs[child_id].status is RunStatus.SUCCEEDED
    forest.deliver(0, redeliver=True)
    forest.deliver(0)  # the same notice again: stale
    parent = forest.runs["p"]
    assert parent.data["line"] == {"sku": "apple", "reserve": 1}
    assert list(forest.applied_ends.values()) == [1]
    assert "after" in parent.current_states


def test_a_failed_child_is_retried_as_a_new_child_with_its_own_key() -> None:
    forest = world()
    first = next(r for r in forest.runs if r != "p")
    forest.run_task(0, fail=True)  # the child's only attempt fails: the child compensates nothing, fails
    assert forest.runs[first].status is RunStatus.FAILED
    forest.deliver(0)
    forest.fire_timer(0)  # the parent's retry
    second = [r for r in forest.runs if r not in ("p", first)]
    assert len(second) == 1
    assert forest.runs[second[0]].idempotency_key != forest.runs[first].idempotency_key
    forest.run_task(0, fail=False)
    forest.deliver(0)
    assert "after" in forest.runs["p"].current_states


@pytest.mark.parametrize("close", list(ParentClose))
def test_cancelling_the_parent_cancels_or_leaves_its_running_child(close: ParentClose) -> None:
    forest = world(parent_close=close)
    child = next(r for r in forest.runs if r != "p")
    forest.feed("p", CancelRequested("ops"))
    if close is ParentClose.CANCEL:
        # The parent waits for the cancelled child to unwind before it ends.
        assert forest.runs["p"].status is RunStatus.COMPENSATING
        [note] = forest.notes
        assert isinstance(note.command, CancelChild)
        assert note.command.child == child
        forest.deliver(0)
        while forest.tasks:  # the child's running step ends, then its compensation runs
            forest.run_task(0, fail=False)
        assert forest.runs[child].status is RunStatus.CANCELLED
        assert HistoryKind.COMPENSATION_SUCCEEDED in [h.kind for h in forest.history[child]]
        forest.deliver(0)  # the child's end reaches the parent
        assert forest.runs["p"].finished
        assert forest.runs["p"].status.value == "cancelled"
    else:
        assert forest.runs["p"].status is RunStatus.CANCELLED
        assert not forest.notes
        assert not forest.runs[child].finished
        kinds = [h.kind for h in forest.history["p"]]
        assert HistoryKind.CHILD_LEFT in kinds


def test_unwinding_the_parent_compensates_a_child_it_completed_through_the_childs_compensation() -> None:
    forest = Forest(
        {
            "line": child_wf(),
            "order": Workflow(
                "order",
                start="call",
                retry=RetryPolicy(max_attempts=1),
                states={"call": Child("line", next="pay"), "pay": Task(h)},
            ),
        }
    )
    forest.start("order", {}, run_id="p")
    child = next(r for r in forest.runs if r != "p")
    forest.run_task(0, fail=False)
    forest.deliver(0)
    forest.run_task(0, fail=True)  # pay fails for good: the parent unwinds
    [note] = forest.notes
    assert isinstance(note.command, CompensateChild)
    assert note.command.child == child
    forest.deliver(0)
    assert forest.runs[child].status is RunStatus.COMPENSATING
    forest.run_task(0, fail=False)  # the child's own compensation of reserve
    assert forest.runs[child].status is RunStatus.COMPENSATED
    forest.deliver(0)
    assert forest.runs["p"].status is RunStatus.COMPENSATED


def test_a_child_end_for_another_child_or_attempt_is_rejected() -> None:
    forest = world()
    child = next(r for r in forest.runs if r != "p")
    seq = forest.runs[child].parent.seq  # type: ignore[union-attr]
    for event in (
        ChildEnded(seq, 2, child, RunStatus.SUCCEEDED),
        ChildEnded(seq, 1, "someone-else", RunStatus.SUCCEEDED),
        ChildEnded(seq + 50, 1, child, RunStatus.SUCCEEDED),
    ):
        assert isinstance(forest.feed("p", event), Rejection)


def test_a_child_of_an_unknown_workflow_is_refused_at_registration_naming_workflow_and_state() -> None:
    with pytest.raises(DefinitionError) as caught:
        App([parent_wf()])
    assert caught.value.workflow == "order"
    assert caught.value.state == "call"
    assert "unknown workflow 'line'" in str(caught.value)
    with pytest.raises(DefinitionError, match="version 3, which is not registered"):
        App([child_wf(), Workflow("o", start="c", states={"c": Child("line", version=3)})])
    App([child_wf(), parent_wf()])  # the child's workflow first: fine


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workflow": ""}, "needs the name of a workflow"),
        ({"version": 0}, "version must be an integer >= 1"),
        ({"input": {"sku": "a..b"}}, "input 'sku' must be a data path"),
    ],
)
def test_a_bad_child_state_is_refused(options: dict[str, Any], message: str) -> None:
    options = {"workflow": "line", **options}
    with pytest.raises(DefinitionError, match=message) as caught:
        Workflow("o", start="c", states={"c": Child(**options)})
    assert caught.value.state == "c"


def test_workflows_that_start_each_other_in_one_transition_are_stopped_as_a_loop() -> None:
    from legato.children import MAX_DEPTH, with_children
    from legato.machine.decide import start_run

    loop = Workflow("loop", start="again", states={"again": Child("loop")})
    app = App([loop])
    with pytest.raises(DefinitionError, match=f"more than {MAX_DEPTH} child runs start each other"):
        with_children(app, start_run(loop, "r", {}, 1000.0), 1000.0)
