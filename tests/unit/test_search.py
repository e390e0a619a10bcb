"""Search attributes in the core: paths checked at registration, values computed by every transition."""

from __future__ import annotations

from typing import Any

import pytest

from legato import Task, Workflow
from legato.errors import DefinitionError
from legato.machine.commands import Decision
from legato.machine.decide import decide, start_run
from legato.machine.events import StepSucceeded
from legato.machine.search import MAX_PATHS, search_values


def h(ctx: Any) -> None:
    return None


def _workflow(*paths: Any) -> Workflow:
    return Workflow("w", start="a", states={"a": Task(h, next="b"), "b": Task(h)}, search=paths)


@pytest.mark.parametrize(
    ("paths", "problem"),
    [
        (("customer..id",), "has an empty key"),
        ((".id",), "has an empty key"),
        (("id.",), "has an empty key"),
        (("",), "non-empty string"),
        ((42,), "non-empty string"),
        (("customer id",), "may hold only letters, digits"),
        (("a'b",), "may hold only letters, digits"),
        (("a", "a"), "listed twice"),
        (tuple(f"p{i}" for i in range(MAX_PATHS + 1)), f"at most {MAX_PATHS}"),
    ],
)
def test_a_malformed_search_path_is_refused_at_registration(paths: tuple[Any, ...], problem: str) -> None:
    with pytest.raises(DefinitionError, match=problem):
        _workflow(*paths)


def test_one_path_given_as_a_string_is_one_path() -> None:
    wf = Workflow("w", start="a", states={"a": Task(h)}, search="customer.id")
    assert wf.search == ("customer.id",)


def test_values_are_kept_as_text_and_only_scalars_have_one() -> None:
    data = {"c": {"id": 42, "vip": True, "tags": ["x"], "rate": 4.5, "name": "Ann", "none": None}}
    paths = ["c.id", "c.vip", "c.tags", "c.rate", "c.name", "c.none", "c.missing", "c.id.deeper", "c"]
    assert search_values(paths, data) == {
        "c.id": "42",
        "c.vip": "true",
        "c.tags": None,
        "c.rate": "4.5",
        "c.name": "Ann",
        "c.none": None,
        "c.missing": None,
        "c.id.deeper": None,
        "c": None,
    }


def test_every_transition_computes_the_values_from_the_new_data() -> None:
    wf = Workflow(
        "w",
        start="a",
        states={"a": Task(h, next="b", output_key="a"), "b": Task(h)},
        search=("order_id", "a.receipt"),
    )
    started = start_run(wf, "r1", {"order_id": 7}, 0.0)
    assert started.run.search == {"order_id": "7", "a.receipt": None}
    step = decide(wf, started.run, StepSucceeded(1, 1, {"receipt": "R"}), 1.0)
    assert isinstance(step, Decision)
    assert step.run.search == {"order_id": "7", "a.receipt": "R"}
    plain = Workflow("p", start="a", states={"a": Task(h)})
    assert start_run(plain, "r2", {"order_id": 7}, 0.0).run.search is None
