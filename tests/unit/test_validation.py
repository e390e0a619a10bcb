"""An invalid definition is refused when it is built, with the workflow and state named."""

from __future__ import annotations

from typing import Any

import pytest

from legato import (
    App,
    Approval,
    Branch,
    Choice,
    ConcurrencyLimit,
    ConfigurationError,
    DefinitionError,
    Fail,
    Field,
    Parallel,
    RateLimit,
    RetryPolicy,
    Succeed,
    Task,
    Wait,
    Workflow,
)


def noop(ctx: Any) -> None:
    return None


CASES: list[tuple[str, dict[str, Any], str | None, str]] = [
    ("unknown target", {"start": "a", "states": {"a": Task(noop, next="nope")}}, "a", "unknown state 'nope'"),
    ("unknown start", {"start": "x", "states": {"a": Task(noop)}}, None, "starts at 'x'"),
    (
        "unreachable",
        {"start": "a", "states": {"a": Task(noop), "island": Task(noop)}},
        "island",
        "unreachable",
    ),
    (
        "no path to an end",
        {
            "start": "a",
            "states": {"a": Task(noop, next="b"), "b": Task(noop, next="a")},
        },
        "a",
        "no path from here to an end",
    ),
    (
        "choice without default",
        {"start": "c", "states": {"c": Choice([(Field("x") > 1, "d")], default=""), "d": Succeed()}},
        "c",
        "needs a default",
    ),
    (
        "duplicate name across branches",
        {
            "start": "p",
            "states": {
                "p": Parallel([Branch("x", {"x": Task(noop)}), Branch("x", {"x": Task(noop)})]),
            },
        },
        "x",
        "used twice",
    ),
    (
        "branch jumps out",
        {
            "start": "p",
            "states": {
                "p": Parallel([Branch("x", {"x": Task(noop, next="done")})], next="done"),
                "done": Succeed(),
            },
        },
        "x",
        "same branch",
    ),
    ("empty parallel", {"start": "p", "states": {"p": Parallel([])}}, "p", "at least one branch"),
    (
        "bad retry",
        {"start": "a", "states": {"a": Task(noop, retry=RetryPolicy(max_attempts=0))}},
        "a",
        "max_attempts",
    ),
    ("bad jitter", {"start": "a", "states": {"a": Task(noop, retry=RetryPolicy(jitter=2))}}, "a", "jitter"),
    ("bad timeout", {"start": "a", "states": {"a": Task(noop, timeout=0)}}, "a", "timeout must be positive"),
    ("wait needs one", {"start": "w", "states": {"w": Wait()}}, "w", "exactly one of seconds or until"),
    (
        "approval on_timeout without timeout",
        {"start": "a", "states": {"a": Approval("ok", on_timeout="f"), "f": Fail()}},
        "a",
        "no timeout",
    ),
    (
        "choice loop",
        {
            "start": "c1",
            "states": {
                "c1": Choice([(Field("x") > 1, "c2")], default="end"),
                "c2": Choice([(Field("x") > 2, "c1")], default="end"),
                "end": Succeed(),
            },
        },
        "c2",
        "loop back to 'c1'",
    ),
    ("not a state", {"start": "a", "states": {"a": "task"}}, "a", "is not a state"),
    (
        "rate key without a limit",
        {"start": "a", "states": {"a": Task(noop, rate_key="customer.id")}},
        "a",
        "rate_key is set but there is no rate_limit",
    ),
    (
        "empty key path",
        {"start": "a", "states": {"a": Task(noop, concurrency_limit="api", concurrency_key="a..b")}},
        "a",
        "concurrency_key must be a data path",
    ),
    (
        "empty limit name",
        {"start": "a", "states": {"a": Task(noop, rate_limit="")}},
        "a",
        "rate_limit must be",
    ),
    # Every rule each kind of state checks, with the whole message.
    ("task without a handler", {"start": "a", "states": {"a": Task("")}}, "a", "a task needs a handler"),
    (
        "bad compensate retry",
        {
            "start": "a",
            "states": {"a": Task(noop, compensate=noop, compensate_retry=RetryPolicy(factor=0.5, jitter=3))},
        },
        "a",
        "illegal compensate_retry policy: factor must be >= 1, got 0.5; jitter must be within [0, 1], got 3",
    ),
    (
        "compensate retry without compensate",
        {"start": "a", "states": {"a": Task(noop, compensate_retry=RetryPolicy())}},
        "a",
        "compensate_retry is set but there is no compensate handler",
    ),
    (
        "first problem of a task wins",
        {"start": "a", "states": {"a": Task("", timeout=0, retry=RetryPolicy(max_attempts=0))}},
        "a",
        "a task needs a handler",
    ),
    (
        "limit name not a string",
        {"start": "a", "states": {"a": Task(noop, concurrency_limit=5)}},  # type: ignore[arg-type]
        "a",
        "concurrency_limit must be the name of a declared limit, got 5",
    ),
    (
        "concurrency key without a limit",
        {"start": "a", "states": {"a": Task(noop, concurrency_key="customer.id")}},
        "a",
        "concurrency_key is set but there is no concurrency_limit",
    ),
    (
        "rate key not a path",
        {"start": "a", "states": {"a": Task(noop, rate_limit="api", rate_key="")}},
        "a",
        "rate_key must be a data path like 'customer.id', got ''",
    ),
    (
        "rule without a condition",
        {"start": "c", "states": {"c": Choice([("x > 1", "d")], default="d"), "d": Succeed()}},  # type: ignore[list-item]
        "c",
        "rule condition 'x > 1' is not a Condition (build it with Field)",
    ),
    (
        "wait with both",
        {"start": "w", "states": {"w": Wait(seconds=1, until="at")}},
        "w",
        "a wait needs exactly one of seconds or until",
    ),
    (
        "negative wait",
        {"start": "w", "states": {"w": Wait(seconds=-1)}},
        "w",
        "wait seconds must be >= 0, got -1",
    ),
    (
        "approval without a signal",
        {"start": "a", "states": {"a": Approval("")}},
        "a",
        "an approval needs the name of the signal it waits for",
    ),
    (
        "approval timeout",
        {"start": "a", "states": {"a": Approval("ok", timeout=-5)}},
        "a",
        "timeout must be positive, got -5",
    ),
    (
        "bad workflow retry",
        {"start": "a", "states": {"a": Task(noop)}, "retry": RetryPolicy(max_attempts=0)},
        None,
        "illegal retry policy: max_attempts must be >= 1, got 0",
    ),
]


@pytest.mark.parametrize(("label", "spec", "state", "message"), CASES, ids=[c[0] for c in CASES])
def test_invalid_definitions_are_refused_naming_workflow_and_state(
    label: str, spec: dict[str, Any], state: str | None, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        Workflow("wf", **spec)
    assert caught.value.workflow == "wf"
    assert caught.value.state == state
    assert message in str(caught.value)
    assert "workflow 'wf'" in str(caught.value)


def test_only_a_target_of_the_workflow_gets_the_branch_hint() -> None:
    with pytest.raises(DefinitionError) as caught:
        Workflow("wf", start="p", states={"p": Parallel([Branch("x", {"x": Task(noop, next="nowhere")})])})
    assert caught.value.state == "x"
    assert str(caught.value).endswith("goes to unknown state 'nowhere'")


@pytest.mark.parametrize(
    ("triggers", "message"),
    [(("legato.signal",), "reserved prefix"), (("a.*",), "exact event name"), (("a", "a"), "listed twice")],
)
def test_bad_triggers_are_refused(triggers: tuple[str, ...], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        Workflow("wf", start="a", states={"a": Task(noop)}, triggers=triggers)


def test_registration_refuses_a_duplicate_version_and_unresolvable_handlers() -> None:
    app = App()
    wf = Workflow("wf", start="a", states={"a": Task(noop)})
    app.register(wf)
    with pytest.raises(DefinitionError, match="version 1 is already registered"):
        app.register(wf)
    broken = Workflow("other", start="a", states={"a": Task("no_such_module:handler")})
    with pytest.raises(DefinitionError, match="cannot import module 'no_such_module'"):
        app.register(broken)
    assert app.names() == ["wf"]


def test_a_valid_definition_with_every_kind_of_state_is_accepted() -> None:
    wf = Workflow(
        "full",
        start="a",
        states={
            "a": Task(noop, next="c", compensate=noop),
            "c": Choice([(Field("n") > 1, "p")], default="w"),
            "w": Wait(seconds=1, next="p"),
            "p": Parallel(
                [Branch("b1", {"b1": Task(noop)}), Branch("b2", {"b2": Approval("go")})], next="ok"
            ),
            "ok": Succeed(),
        },
    )
    assert set(wf.state_names()) == {"a", "c", "w", "p", "b1", "b2", "ok"}
    assert wf.placement("b2").parallel == "p"
    assert wf.placement("b2").branch == 1
    assert "state p {" in wf.describe()["mermaid"]


def test_registration_refuses_a_limit_that_is_not_declared_or_of_the_wrong_kind() -> None:
    app = App(limits=[RateLimit("payments", 50, burst=10), ConcurrencyLimit("psp", 2)])
    unknown = Workflow("pay", start="a", states={"a": Task(noop, rate_limit="payment")})
    with pytest.raises(DefinitionError) as caught:
        app.register(unknown)
    assert (caught.value.workflow, caught.value.state) == ("pay", "a")
    assert "unknown rate limit 'payment' (declared: payments, psp)" in str(caught.value)
    wrong = Workflow("pay", start="a", states={"a": Task(noop, concurrency_limit="payments")})
    with pytest.raises(DefinitionError, match="concurrency_limit 'payments' names a rate limit"):
        app.register(wrong)
    assert app.names() == []
    ok = Workflow(
        "pay",
        start="a",
        states={"a": Task(noop, rate_limit="payments", rate_key="customer.id", concurrency_limit="psp")},
    )
    app.register(ok)
    assert [u.name for u in ok.task("a").limit_uses()] == ["payments", "psp"]


def test_limits_are_declared_once_and_checked() -> None:
    with pytest.raises(DefinitionError, match="a limit of this name is already declared"):
        App(limits=[RateLimit("api", 1), ConcurrencyLimit("api", 1)])
    with pytest.raises(DefinitionError, match="rate limit 'api': rate must be a positive number"):
        App(limits=[RateLimit("api", -1)])


def test_operators_can_change_a_declared_limit_through_configuration() -> None:
    wf = Workflow("pay", start="a", states={"a": Task(noop, rate_limit="payments")})
    app = App([wf], limits=[RateLimit("payments", 50, burst=10)])
    changed = app.with_limits({"payments": {"rate": 80, "scope": "process"}})
    assert changed.limits["payments"] == RateLimit("payments", 80, burst=10, scope="process")
    assert app.limits["payments"] == RateLimit("payments", 50, burst=10)
    assert changed.workflow("pay") is wf
    with pytest.raises(ConfigurationError, match="undeclared limits nope"):
        app.with_limits({"nope": {"rate": 1}})
    with pytest.raises(ConfigurationError, match=r"\[limits.payments\]: rate must be a positive number"):
        app.with_limits({"payments": {"rate": 0}})
    with pytest.raises(ConfigurationError, match="unexpected keyword argument 'rat'"):
        app.with_limits({"payments": {"rat": 1}})
