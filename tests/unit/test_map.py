"""The map state in the pure core: validation, concurrency, tolerated failures,
results, draining and compensation."""

from __future__ import annotations

from typing import Any

import pytest

from legato import Branch, Fail, Map, Parallel, RetryPolicy, RunStatus, Task, Wait, Workflow
from legato.errors import DefinitionError
from legato.machine.commands import CollectMapResults, Decision, DispatchStep, RecordMapItem
from legato.machine.errors import ErrorInfo
from legato.machine.events import CancelRequested, StepFailed, StepSucceeded
from legato.machine.map import item_data, progress
from legato.machine.run import Run, StepKind
from legato.machine.vocabulary import HistoryKind
from tests.unit.sim import Sim, boom


def h(ctx: Any) -> None:
    return None


ONCE = RetryPolicy(max_attempts=1)


def mapped(**options: Any) -> Workflow:
    iterator = options.pop("iterator", Branch("work", {"work": Task(h, compensate=h)}))
    return Workflow(
        "fan",
        start="before",
        retry=options.pop("retry", ONCE),
        states={
            "before": Task(h, next="each", compensate=h),
            "each": Map("order.lines", iterator, next="after", **options),
            "after": Task(h),
        },
    )


def _items(run: Run) -> list[tuple[int, int]]:
    """(seq, index) of the running items."""
    return [(t.seq, t.branch) for t in run.tokens if t.state == "work" and t.branch is not None]


def _sim(lines: list[Any], **options: Any) -> Sim:
    sim = Sim(mapped(**options)).start({"order": {"lines": lines}})
    sim.step()  # before
    return sim


# -- validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_concurrency": 0}, "max_concurrency must be an integer from 1 to 1000, got 0"),
        ({"max_concurrency": -3}, "max_concurrency must be an integer from 1 to 1000"),
        ({"max_concurrency": 2.5}, "max_concurrency must be an integer"),
        ({"tolerated_failures": -1}, "tolerated_failures must be >= 0"),
        ({"tolerated_failures": 1.5}, "tolerated_failures as a fraction must be in [0, 1]"),
        ({"tolerated_failures": True}, "tolerated_failures must be a count"),
        ({"output_key": ""}, "output_key must be a non-empty key"),
    ],
)
def test_a_bad_map_is_refused_naming_the_workflow_and_the_state(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        mapped(**options)
    assert caught.value.workflow == "fan"
    assert caught.value.state == "each"
    assert message in str(caught.value)


@pytest.mark.parametrize("path", ["", "order..lines", " order", "order.lines "])
def test_a_bad_items_path_is_refused(path: str) -> None:
    with pytest.raises(DefinitionError, match="items must be a data path") as caught:
        Workflow("fan", start="each", states={"each": Map(path, Branch("w", {"w": Task(h)}))})
    assert caught.value.state == "each"


def test_an_iterator_holds_tasks_and_their_ends_only() -> None:
    iterator = Branch("work", {"work": Task(h, next="pause"), "pause": Wait(seconds=1)})
    with pytest.raises(
        DefinitionError, match="iterator of map 'each' can hold task, child, succeed and fail"
    ) as caught:
        mapped(iterator=iterator)
    assert caught.value.state == "pause"
    with pytest.raises(DefinitionError, match="must start with a task"):
        mapped(iterator=Branch("stop", {"stop": Fail()}))
    with pytest.raises(DefinitionError, match="on_failure has no meaning"):
        mapped(iterator=Branch("work", {"work": Task(h, on_failure="suspend")}))  # type: ignore[arg-type]


def test_an_iterator_state_cannot_leave_the_iterator() -> None:
    with pytest.raises(DefinitionError, match="unknown state 'after'"):
        mapped(iterator=Branch("work", {"work": Task(h, next="after")}))


# -- running ------------------------------------------------------------------


def test_items_start_in_order_and_never_more_than_max_concurrency() -> None:
    sim = _sim(list("abcde"), max_concurrency=2)
    assert [i for _, i in _items(sim.run)] == [0, 1]  # type: ignore[arg-type]
    sim.step(index=1)  # item 1 finishes first
    assert [i for _, i in _items(sim.run)] == [0, 2]  # type: ignore[arg-type]
    while _items(sim.run):  # type: ignore[arg-type]
        assert len(_items(sim.run)) <= 2  # type: ignore[arg-type]
        sim.step()
    assert [c.state for c in sim.pending] == ["after"]


def test_an_item_step_sees_its_item_and_index_and_what_its_earlier_steps_returned() -> None:
    iterator = Branch("work", {"work": Task(h, next="finish"), "finish": Task(h, output_key="done")})
    sim = _sim([{"sku": "x"}, {"sku": "y"}], iterator=iterator)
    run = sim.run
    assert run is not None
    work = next(t for t in run.tokens if t.state == "work" and t.branch == 1)
    assert item_data(sim.workflow, run, work) == {"item": {"sku": "y"}, "index": 1}
    sim.feed(StepSucceeded(work.seq, 1, {"reserved": 2}))
    run = sim.run
    assert run is not None
    finish = next(t for t in run.tokens if t.state == "finish")
    assert item_data(sim.workflow, run, finish) == {"item": {"sku": "y"}, "index": 1, "reserved": 2}
    # The run's own data is untouched by item steps.
    assert "reserved" not in run.data
    sim.feed(StepSucceeded(finish.seq, 1, True))
    [record] = [c for c in sim.decisions[-1].commands if isinstance(c, RecordMapItem)]
    assert (record.index, record.ok, record.result) == (1, True, {"reserved": 2, "done": True})


def test_a_step_outside_a_map_sees_no_item() -> None:
    sim = Sim(mapped()).start({"order": {"lines": [1]}})
    run = sim.run
    assert run is not None
    assert item_data(sim.workflow, run, run.tokens[0]) is None


def test_the_join_collects_results_once_and_goes_on() -> None:
    sim = _sim([1, 2, 3], max_concurrency=3, output_key="out")
    for _ in range(3):
        sim.step(index=len(sim.pending) - 1)
    joins = [c for d in sim.decisions for c in d.commands if isinstance(c, CollectMapResults)]
    assert [(c.key) for c in joins] == ["out"]
    assert [h.kind for h in sim.decisions[-1].history if h.kind is HistoryKind.JOINED] == [HistoryKind.JOINED]
    assert [c.state for c in sim.pending] == ["after"]


def test_an_empty_list_goes_straight_on() -> None:
    sim = _sim([])
    last = sim.decisions[-1]
    assert any(isinstance(c, CollectMapResults) for c in last.commands)
    assert [c.state for c in sim.pending] == ["after"]


@pytest.mark.parametrize("value", [{"a": 1}, "abc", 3, None])
def test_a_value_that_is_not_a_list_fails_the_step_with_a_clear_error(value: Any) -> None:
    sim = Sim(mapped(), now=1.0).start({"order": {"lines": value}})
    sim.drive()
    run = sim.run
    assert run is not None
    assert run.status is RunStatus.COMPENSATED
    assert run.error is not None
    assert run.error.type == "MapItemsNotList"
    assert "map 'each': the data at 'order.lines' must be a list of items" in run.error.message


def test_an_item_is_retried_by_its_own_tasks_policy() -> None:
    iterator = Branch("work", {"work": Task(h, retry=RetryPolicy(max_attempts=3, initial_delay=0.0))})
    sim = _sim(["a"], iterator=iterator)
    [(seq, _)] = _items(sim.run)  # type: ignore[arg-type]
    sim.feed(StepFailed(seq, 1, boom()))
    sim.feed(StepFailed(seq, 2, boom()))
    assert not any(isinstance(c, RecordMapItem) for d in sim.decisions for c in d.commands)
    sim.feed(StepSucceeded(seq, 3, {"ok": 1}))
    assert [c.state for c in sim.pending if c.state == "after"] == ["after"]


def test_tolerated_failures_as_a_fraction() -> None:
    sim = _sim(list("abcd"), max_concurrency=4, tolerated_failures=0.5)
    for seq, index in _items(sim.run):  # type: ignore[arg-type]
        if index < 2:
            sim.feed(StepFailed(seq, 1, boom()))
        else:
            sim.feed(StepSucceeded(seq, 1, None))
    run = sim.run
    assert run is not None
    assert [t.state for t in run.tokens] == ["after"]


def test_one_failure_too_many_fails_the_map_drains_and_compensates_in_reverse_completion_order() -> None:
    sim = _sim(list("abcdef"), max_concurrency=3, tolerated_failures=1)
    (s0, _), (s1, _), (s2, _) = _items(sim.run)  # type: ignore[arg-type]
    sim.feed(StepSucceeded(s2, 1, None))  # item 2 completes first
    sim.feed(StepSucceeded(s0, 1, None))  # then item 0
    (s3, _), (s4, _) = [(s, i) for s, i in _items(sim.run) if i in (3, 4)]  # type: ignore[arg-type]
    sim.feed(StepFailed(s1, 1, boom()))  # tolerated
    sim.feed(StepFailed(s3, 1, boom()))  # one too many: the map fails
    run = sim.run
    assert run is not None
    # The map fails once its running items have drained; until then the run waits.
    assert run.status is RunStatus.RUNNING
    [entry] = progress(run)
    assert entry["failing"] is True
    # Item 5 started when item 1's failure was still tolerated; now 4 and 5 drain.
    assert (entry["done"], entry["failed"], entry["running"], entry["pending"]) == (2, 2, 2, 0)
    [s5] = [s for s, i in _items(run) if i == 5]
    sim.feed(StepSucceeded(s4, 1, None))
    run = sim.run
    assert run is not None
    assert run.status is RunStatus.RUNNING
    sim.feed(StepSucceeded(s5, 1, None))
    run = sim.run
    assert run is not None
    assert run.status is RunStatus.COMPENSATING
    assert run.error is not None
    assert run.error.type == "MapFailed"
    assert "2 of 6 items failed, 1 tolerated" in run.error.message
    undone = []
    sim.pending = [c for c in sim.pending if c.kind is StepKind.COMPENSATION]  # fed by hand above
    while sim.pending:
        command = sim.pending[0]
        assert command.kind is StepKind.COMPENSATION
        token = run.token(command.seq) if run else None
        assert token is not None
        undone.append((command.state, item_data(sim.workflow, run, token)))
        sim.step()
        run = sim.run
        assert run is not None
    assert undone == [
        ("work", {"item": "f", "index": 5}),
        ("work", {"item": "e", "index": 4}),
        ("work", {"item": "a", "index": 0}),
        ("work", {"item": "c", "index": 2}),
        ("before", None),
    ]
    assert run.status is RunStatus.COMPENSATED


def test_a_fail_state_in_the_iterator_fails_the_item_not_the_run() -> None:
    iterator = Branch("work", {"work": Task(h, next="stop"), "stop": Fail("Rejected")})
    sim = _sim(["a", "b"], iterator=iterator, tolerated_failures=2)
    sim.drive()
    run = sim.run
    assert run is not None
    assert run.status is RunStatus.SUCCEEDED
    records = [c for d in sim.decisions for c in d.commands if isinstance(c, RecordMapItem)]
    assert [(r.ok, r.error.type if r.error else None) for r in records] == [(False, "Rejected")] * 2


def test_a_map_inside_a_parallel_branch_joins_its_branch() -> None:
    workflow = Workflow(
        "nested",
        start="both",
        states={
            "both": Parallel(
                [
                    Branch("each", {"each": Map("xs", Branch("work", {"work": Task(h)}))}),
                    Branch("other", {"other": Task(h)}),
                ],
                next="after",
            ),
            "after": Task(h),
        },
    )
    sim = Sim(workflow).start({"xs": [1, 2]})
    run = sim.drive()
    assert run.status is RunStatus.SUCCEEDED
    assert [c.state for c in sim.dispatched].count("after") == 1


def test_cancelling_a_run_in_a_map_drains_its_items_and_compensates() -> None:
    sim = _sim(list("abc"), max_concurrency=2)
    (s0, _), _ = _items(sim.run)  # type: ignore[arg-type]
    sim.feed(StepSucceeded(s0, 1, None))
    sim.feed(CancelRequested("ops", compensate=True))
    run = sim.drive()
    assert run.status is RunStatus.CANCELLED
    compensations = [c.state for c in sim.dispatched if c.kind is StepKind.COMPENSATION]
    # Item 0, and items 1 and 2 (running at the cancel, drained), are undone, then
    # the step before the map.
    assert compensations == ["work", "work", "work", "before"]


def test_progress_counts_items() -> None:
    sim = _sim(list("abcde"), max_concurrency=2, tolerated_failures=3)
    (s0, _), (s1, _) = _items(sim.run)  # type: ignore[arg-type]
    sim.feed(StepSucceeded(s0, 1, None))
    sim.feed(StepFailed(s1, 1, ErrorInfo.of("X", "x")))
    run = sim.run
    assert run is not None
    assert progress(run) == [
        {
            "state": "each",
            "seq": progress(run)[0]["seq"],
            "total": 5,
            "done": 1,
            "failed": 1,
            "running": 2,
            "pending": 1,
            "failing": False,
        }
    ]


def test_a_map_of_ten_thousand_items_keeps_the_run_small() -> None:
    sim = _sim(list(range(10_000)), max_concurrency=10, iterator=Branch("work", {"work": Task(h)}))
    largest = 0
    while sim.pending and sim.pending[0].state == "work":
        decision = sim.step()
        assert isinstance(decision, Decision)
        largest = max(largest, len(decision.run.tokens), len(decision.commands))
    assert largest <= 12
    assert [c.state for c in sim.pending] == ["after"]
    assert sum(isinstance(c, DispatchStep) and c.state == "work" for c in sim.dispatched) == 10_000


def test_the_graph_draws_the_iterator_inside_the_map() -> None:
    described = mapped(
        iterator=Branch("work", {"work": Task(h, next="finish"), "finish": Task(h)})
    ).describe()
    assert "state each {\n        [*] --> work\n        work --> finish" in described["mermaid"]
    assert {"from": "each", "to": "work", "label": "each item"} in described["edges"]
    node = next(n for n in described["nodes"] if n["id"] == "each")
    assert (node["kind"], node["items"], node["max_concurrency"]) == ("map", "order.lines", 10)
    assert next(n for n in described["nodes"] if n["id"] == "finish")["parallel"] == "each"
