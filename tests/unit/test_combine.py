"""Decisions about one run combined into one transition (machine/combine.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from legato import Workflow
from legato.machine.combine import combine
from legato.machine.commands import Decision, Rejection
from tests.unit.sim import Sim
from tests.unit.test_decide_properties import WORKFLOWS, _consume, events_for


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(WORKFLOWS), st.data())
def test_a_combined_run_of_decisions_is_the_last_one_a_version_after_the_first(
    workflow: Workflow, data: st.DataObject
) -> None:
    sim = Sim(workflow).start({"n": 0})
    events = events_for(sim)
    applied: list[Decision] = []
    for _ in range(40):
        event = data.draw(events)
        _consume(sim, event)
        outcome = sim.feed(event)
        if not isinstance(outcome, Rejection):
            applied.append(outcome)
    # Any stretch of consecutive decisions, as the engine commits the events queued for a turn.
    cut = data.draw(st.integers(0, len(applied)))
    chunk = applied[cut : cut + data.draw(st.integers(1, 8))]
    if not chunk:
        return
    first, last = chunk[0], chunk[-1]
    before = sim.decisions[sim.decisions.index(first) - 1].run
    together = combine(chunk)
    assert together.previous_version == before.version
    assert together.run.version == before.version + 1
    # Everything else of the run is the last decision's.
    assert replace(together.run, version=last.run.version) == last.run
    assert together.history == tuple(r for d in chunk for r in d.history)
    assert together.commands == tuple(c for d in chunk for c in d.commands)
    # The keys it says it set rebuild the last document from the one before the first,
    # which is what a store's patch (data || patch) relies on.
    assert together.data_set is not None
    assert {**before.data, **{k: last.run.data[k] for k in together.data_set}} == last.run.data


def test_decisions_that_do_not_follow_each_other_are_refused() -> None:
    sim = Sim(WORKFLOWS[1]).start({"n": 0})
    first = sim.step()
    second = sim.step()
    assert isinstance(first, Decision)
    assert isinstance(second, Decision)
    assert combine([first]) is first
    with pytest.raises(ValueError, match="do not follow each other"):
        combine([second, first])
    with pytest.raises(ValueError, match="nothing"):
        combine([])


def test_a_new_document_in_any_decision_is_written_whole() -> None:
    sim = Sim(WORKFLOWS[1]).start({"n": 0})
    first, second = sim.step(), sim.step()
    assert isinstance(first, Decision)
    assert isinstance(second, Decision)
    assert combine([first, second]).data_set == (first.data_set or set()) | (second.data_set or set())
    assert combine([replace(first, data_set=None), second]).data_set is None
