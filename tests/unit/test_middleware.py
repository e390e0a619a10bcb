"""Step middleware: how the app's middleware is installed, composed and guarded,
and the observers' one-input hooks. A real worker runs them in
tests/integration/test_middleware.py."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import anyio
import pytest

from legato import (
    App,
    DefinitionError,
    Middleware,
    NonRetryableError,
    RateLimit,
    RetryAfter,
    StepCall,
    StepContext,
    StepOutcome,
    Task,
    Workflow,
)
from legato.clock import ManualClock
from legato.machine.decide import start_run
from legato.machine.run import StepKind
from legato.observe import (
    AppliedInput,
    ConflictInput,
    MessageHeadersInput,
    Observer,
    Observers,
    RateLimitWaitedInput,
)
from legato.worker.middleware import AppMiddleware, Next, compose, with_app_middleware


async def noop(ctx: StepContext) -> None:
    return None


WF = Workflow("w", start="a", states={"a": Task(noop, output_key="result")})
APP = App([WF])


def a_call() -> StepCall:
    run = start_run(WF, "run-1", {"tenant": "acme"}, 100.0).run
    token = run.token(1) or run.tokens[0]
    ctx = StepContext(
        run.id, WF.name, WF.version, token.state, token.seq, token.attempt, token.kind, {}, {}, 0
    )
    return StepCall(ctx, run, WF, WF.task("a"), APP.handler(WF, "a", StepKind.STEP), {})


async def handler_ok(call: StepCall) -> StepOutcome:
    return StepOutcome(1.0, 2.0, output="done")


def guard(*layers: Any) -> Next:
    """The app's layers around ``handler_ok``, as the worker composes them."""
    return compose([AppMiddleware(layers, ManualClock(50.0))], handler_ok)


# -- installing ------------------------------------------------------------------


async def passthrough(call: StepCall, call_next: Next) -> StepOutcome:
    return await call_next(call)


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, call: StepCall, call_next: Next) -> StepOutcome:
        self.calls += 1
        return await call_next(call)


def test_the_app_keeps_its_middleware_in_order_and_through_limit_overrides() -> None:
    counting = Counting()
    app = App([WF], limits=[RateLimit("api", 5)], middleware=[passthrough, counting])
    assert app.middleware == (passthrough, counting)
    assert app.with_limits({"api": {"rate": 9}}).middleware == (passthrough, counting)
    assert App().middleware == ()


def sync_middleware(call: StepCall, call_next: Next) -> StepOutcome:
    raise AssertionError("never called")


@pytest.mark.parametrize(
    ("layer", "named"),
    [(sync_middleware, "sync_middleware"), ("a string", "str"), (Counting, "Counting")],
)
def test_the_app_refuses_what_is_not_an_async_middleware_naming_it(layer: Any, named: str) -> None:
    with pytest.raises(DefinitionError, match=rf"middleware '{named}': must be an async function"):
        App(middleware=[layer])


def test_async_callables_of_every_shape_are_accepted() -> None:
    async def with_options(call: StepCall, call_next: Next, *, label: str) -> StepOutcome:
        return await call_next(call)

    layers: list[Middleware] = [passthrough, Counting(), partial(with_options, label="x")]
    assert App(middleware=layers).middleware == tuple(layers)


def test_telemetry_wraps_the_app_middleware_which_wraps_nothing_when_there_is_none() -> None:
    telemetry: list[Any] = [passthrough]
    assert with_app_middleware(telemetry, (), ManualClock()) == [passthrough]
    chain = with_app_middleware(telemetry, (Counting(),), ManualClock())
    assert chain[0] is passthrough
    assert isinstance(chain[1], AppMiddleware)


async def test_the_first_middleware_listed_is_the_outermost() -> None:
    order: list[str] = []

    def named(name: str) -> Any:
        async def layer(call: StepCall, call_next: Next) -> StepOutcome:
            order.append(f"{name} in")
            outcome = await call_next(call)
            order.append(f"{name} out")
            return outcome

        return layer

    assert (await guard(named("outer"), named("inner"))(a_call())).output == "done"
    assert order == ["outer in", "inner in", "inner out", "outer out"]


# -- changing the call and the outcome ---------------------------------------------


async def test_a_middleware_can_change_the_call_and_the_outcome() -> None:
    async def tag(call: StepCall, call_next: Next) -> StepOutcome:
        changed = dataclasses.replace(call, headers={"tenant": call.run.input["tenant"]})
        outcome = await call_next(changed)
        return dataclasses.replace(outcome, output=f"{outcome.output} for {changed.headers['tenant']}")

    seen: list[StepCall] = []

    async def spy(call: StepCall, call_next: Next) -> StepOutcome:
        seen.append(call)
        return await call_next(call)

    outcome = await guard(tag, spy)(a_call())
    assert outcome.output == "done for acme"
    assert seen[0].headers == {"tenant": "acme"}


async def test_a_middleware_can_answer_without_running_the_handler() -> None:
    async def skip(call: StepCall, call_next: Next) -> StepOutcome:
        return StepOutcome(7.0, 8.0, output="cached")

    assert await guard(skip)(a_call()) == StepOutcome(7.0, 8.0, output="cached")


# -- errors --------------------------------------------------------------------------


def raising(error: Exception, after_handler: bool = False) -> Any:
    async def layer(call: StepCall, call_next: Next) -> StepOutcome:
        if after_handler:
            await call_next(call)
        raise error

    return layer


async def test_an_error_raised_by_a_middleware_is_the_attempt_s_failure() -> None:
    outcome = await guard(raising(ConnectionError("tenant registry down")))(a_call())
    assert not outcome.ok
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.message) == ("ConnectionError", "tenant registry down")
    assert "tenant registry down" in (outcome.error.traceback or "")
    assert (outcome.started_at, outcome.finished_at) == (50.0, 50.0)
    assert (outcome.retry_after, outcome.non_retryable) == (None, False)


async def test_an_error_raised_after_the_handler_ran_fails_the_attempt_too() -> None:
    outcome = await guard(raising(ValueError("audit log full"), after_handler=True))(a_call())
    assert outcome.error is not None
    assert outcome.error.type == "ValueError"
    assert outcome.output is None


async def test_retry_after_and_non_retryable_steer_the_retry_as_from_a_handler() -> None:
    later = await guard(raising(RetryAfter(3.5)))(a_call())
    assert later.error is not None
    assert later.retry_after == 3.5
    final = await guard(raising(NonRetryableError("tenant suspended")))(a_call())
    assert final.error is not None
    assert final.non_retryable


async def test_an_outer_middleware_can_catch_what_an_inner_one_raised() -> None:
    async def forgiving(call: StepCall, call_next: Next) -> StepOutcome:
        try:
            return await call_next(call)
        except KeyError:
            return StepOutcome(0.0, 0.0, output="default")

    outcome = await guard(forgiving, raising(KeyError("tenant")))(a_call())
    assert outcome == StepOutcome(0.0, 0.0, output="default")


async def test_output_a_middleware_puts_in_is_checked_like_a_handler_s() -> None:
    async def unstorable(call: StepCall, call_next: Next) -> StepOutcome:
        outcome = await call_next(call)
        return dataclasses.replace(outcome, output={"when": object()})

    outcome = await guard(unstorable)(a_call())
    assert outcome.error is not None
    assert outcome.error.type == "legato.worker.execute.InvalidOutput"
    assert outcome.non_retryable
    assert outcome.output is None


async def test_output_a_middleware_changed_in_place_is_checked_too() -> None:
    async def handler_dict(call: StepCall) -> StepOutcome:
        return StepOutcome(1.0, 2.0, output={"total": 5})

    async def stamp(call: StepCall, call_next: Next) -> StepOutcome:
        outcome = await call_next(call)
        assert isinstance(outcome.output, dict)
        outcome.output["at"] = object()
        return outcome

    chain = compose([AppMiddleware([stamp], ManualClock())], handler_dict)
    outcome = await chain(a_call())
    assert outcome.error is not None
    assert outcome.error.type == "legato.worker.execute.InvalidOutput"


async def test_cancellation_is_not_a_failure_it_propagates() -> None:
    async def slow(call: StepCall, call_next: Next) -> StepOutcome:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    with anyio.CancelScope() as scope:
        scope.cancel()
        await guard(slow)(a_call())
    assert scope.cancelled_caught


# -- observers -------------------------------------------------------------------


class Conflicts(Observer):
    def __init__(self) -> None:
        self.seen: list[ConflictInput] = []

    def conflict(self, conflict: ConflictInput) -> None:
        self.seen.append(conflict)


class Headers(Observer):
    def message_headers(self, headers: MessageHeadersInput) -> dict[str, str]:
        return {"run": headers.run.id}


def test_an_observer_says_which_hooks_it_overrides() -> None:
    assert not Observer().overrides(Observer.applied)
    assert Conflicts().overrides(Observer.conflict)
    assert not Conflicts().overrides(Observer.applied)
    fan = Observers([Conflicts(), Headers()])
    assert fan.overrides(Observer.conflict)
    assert fan.overrides(Observer.message_headers)
    assert not fan.overrides(Observer.applied)
    assert not fan.overrides(Observer.rate_limit_waited)
    assert not Observers().overrides(Observer.conflict)


def test_observers_hand_the_same_input_to_each_and_merge_headers() -> None:
    first, second = Conflicts(), Conflicts()
    fan = Observers([first, second, Headers()])
    event = ConflictInput("run-9")
    fan.conflict(event)
    assert first.seen == [event]
    assert second.seen[0] is event
    run = start_run(WF, "run-9", {}, 0.0).run
    assert fan.message_headers(MessageHeadersInput(run)) == {"run": "run-9"}
    fan.applied(AppliedInput(start_run(WF, "run-9", {}, 0.0), created=True))  # no observer cares: fine
    fan.rate_limit_waited(RateLimitWaitedInput("api", 0.5))


def test_observer_inputs_are_frozen_and_slotted() -> None:
    event = RateLimitWaitedInput(limit="api", seconds=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.seconds = 1.0  # type: ignore[misc]
    assert not hasattr(event, "__dict__")
