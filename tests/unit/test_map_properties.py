"""A map's join, over random interleavings of item completions, failures,
retries and redeliveries (hypothesis): it fires exactly once, never before
every item has finished or been drained, and never with more items running
than ``max_concurrency``."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from legato import Branch, Map, RetryPolicy, RunStatus, Task, Workflow
from legato.machine.commands import (
    CollectMapResults,
    Decision,
    DispatchStep,
    RecordMapItem,
    Rejection,
)
from legato.machine.events import StepFailed, StepSucceeded
from legato.machine.run import Run, StepKind
from legato.machine.vocabulary import HistoryKind
from tests.unit.sim import Sim, boom


def h(ctx: Any) -> None:
    return None


def mapped(concurrency: int, tolerated: int | float, compensate: bool) -> Workflow:
    return Workflow(
        "fan",
        start="before",
        retry=RetryPolicy(max_attempts=2, initial_delay=1.0, jitter=0.0),
        states={
            "before": Task(h, next="each", compensate=h if compensate else None),
            "each": Map(
                "lines",
                Branch(
                    "work",
                    {
                        "work": Task(h, next="finish", compensate=h if compensate else None),
                        "finish": Task(h),
                    },
                ),
                next="after",
                max_concurrency=concurrency,
                tolerated_failures=tolerated,
            ),
            "after": Task(h),
        },
    )


def _items_running(run: Run) -> int:
    holders = {t.seq for t in run.tokens if t.map is not None}
    return sum(1 for t in run.tokens if t.parent in holders)


@settings(max_examples=300, deadline=None)
@given(
    items=st.integers(0, 12),
    concurrency=st.integers(1, 4),
    tolerated=st.one_of(st.integers(0, 3), st.sampled_from([0.0, 0.25, 0.5, 1.0])),
    compensate=st.booleans(),
    data=st.data(),
)
def test_a_map_joins_exactly_once_whatever_the_interleaving(
    items: int, concurrency: int, tolerated: int | float, compensate: bool, data: st.DataObject
) -> None:
    sim = Sim(mapped(concurrency, tolerated, compensate)).start({"lines": list(range(items))})
    delivered: list[DispatchStep] = []
    for _ in range(400):
        run = sim.run
        assert run is not None
        assert _items_running(run) <= concurrency
        if run.finished:
            break
        if sim.pending and (not sim.timers or data.draw(st.integers(0, 3)) > 0):
            index = data.draw(st.integers(0, len(sim.pending) - 1))
            command = sim.pending.pop(index)
            delivered.append(command)
            item_step = command.kind is StepKind.STEP and command.state in ("work", "finish")
            if item_step and data.draw(st.integers(0, 3)) == 0:
                outcome = sim.feed(StepFailed(command.seq, command.attempt, boom(), command.kind))
            else:
                outcome = sim.feed(StepSucceeded(command.seq, command.attempt, None, command.kind))
            assert isinstance(outcome, Decision)
        elif sim.timers:
            sim.fire_timers()
        # A redelivered message is a no-op, whatever it was.
        redeliver: bool = data.draw(st.booleans())
        if delivered and redeliver:
            old: DispatchStep = data.draw(st.sampled_from(delivered))
            assert isinstance(sim.feed(StepSucceeded(old.seq, old.attempt, None, old.kind)), Rejection)
    run = sim.run
    assert run is not None
    assert run.finished

    commands = [c for d in sim.decisions for c in d.commands]
    recorded = [c for c in commands if isinstance(c, RecordMapItem)]
    joins = [c for c in commands if isinstance(c, CollectMapResults)]
    history = [line for d in sim.decisions for line in d.history]
    failing = [line for line in history if line.kind is HistoryKind.MAP_FAILING]
    # Every item is recorded at most once; the join, or the failure, at most once.
    assert len({c.index for c in recorded}) == len(recorded)
    assert len(joins) + len(failing) == 1
    failed = sum(1 for c in recorded if not c.ok)
    allowed = tolerated if isinstance(tolerated, int) else int(tolerated * items)
    if joins:
        # Joined only once every item finished, and then only once.
        assert sorted(c.index for c in recorded) == list(range(items))
        assert failed <= allowed
        join_at = next(
            i
            for i, d in enumerate(sim.decisions)
            if any(isinstance(c, CollectMapResults) for c in d.commands)
        )
        recorded_by_then = [
            c for d in sim.decisions[: join_at + 1] for c in d.commands if isinstance(c, RecordMapItem)
        ]
        assert len(recorded_by_then) == items
        assert [c.state for c in sim.dispatched].count("after") == 1
        assert run.status is RunStatus.SUCCEEDED
    else:
        assert failed > allowed
        assert "after" not in [c.state for c in sim.dispatched]
        assert run.status in (RunStatus.FAILED, RunStatus.COMPENSATED)
        assert run.error is not None
        assert run.error.type == "MapFailed"
    # Once the map is decided (joined, or failing), no item step is dispatched:
    # running items drain, finishing the step they are in and no other.
    decided_at = next(
        i
        for i, d in enumerate(sim.decisions)
        if any(isinstance(c, CollectMapResults) for c in d.commands)
        or any(line.kind is HistoryKind.MAP_FAILING for line in d.history)
    )
    later = [
        c
        for d in sim.decisions[decided_at + 1 :]
        for c in d.commands
        if isinstance(c, DispatchStep) and c.kind is StepKind.STEP and c.state in ("work", "finish")
    ]
    assert later == []
