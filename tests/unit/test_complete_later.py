"""The handler's side of completion from outside: what ``CompleteLater`` and
``ctx.complete_later()`` turn an attempt into, and what they refuse."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from legato import CompleteLater
from legato.app import ResolvedHandler
from legato.clock import SystemClock
from legato.completion import StepRef, step_of, token_digest
from legato.context import StepContext
from legato.machine.run import StepKind
from legato.worker.execute import StepOutcome, invoke

RUN_ID = "8a0f6c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b"


def context() -> StepContext:
    return StepContext(RUN_ID, "w", 1, "ask", 3, 2, StepKind.STEP, {}, {}, 1)


async def call(function: Any, is_async: bool = True) -> StepOutcome:
    handler = ResolvedHandler("h", function, is_async)
    return await invoke(handler, context(), None, anyio.CapacityLimiter(1), SystemClock())


async def test_a_returned_marker_defers_the_attempt_and_names_its_step() -> None:
    made: list[CompleteLater] = []

    async def handler(ctx: StepContext) -> CompleteLater:
        made.append(CompleteLater(timeout=30))
        return made[0]

    outcome = await call(handler)
    assert outcome.ok
    assert outcome.deferred is not None
    assert outcome.deferred.timeout == 30.0
    [later] = made
    assert outcome.deferred.digest == token_digest(later.token)
    assert step_of(later.token) == StepRef(RUN_ID, 3, 2)
    assert later.token not in repr(later)  # a credential: never in logs


async def test_ctx_complete_later_defers_a_sync_handler_too_with_one_token() -> None:
    seen: list[str] = []

    def handler(ctx: StepContext) -> None:
        seen.append(ctx.complete_later(timeout=5))
        seen.append(ctx.complete_later())  # the same token again

    outcome = await call(handler, is_async=False)
    assert outcome.deferred is not None
    assert seen[0] == seen[1]
    assert outcome.deferred.digest == token_digest(seen[0])
    assert outcome.deferred.timeout == 5.0


async def test_a_sync_handler_that_makes_a_marker_in_its_thread_names_its_step() -> None:
    made: list[CompleteLater] = []

    def handler(ctx: StepContext) -> CompleteLater:
        made.append(CompleteLater())
        return made[0]

    outcome = await call(handler, is_async=False)
    assert outcome.deferred is not None
    assert outcome.deferred.timeout is None
    assert step_of(made[0].token) == StepRef(RUN_ID, 3, 2)


async def test_output_beside_a_token_is_refused_as_ambiguous() -> None:
    async def both(ctx: StepContext) -> dict[str, int]:
        ctx.complete_later()
        return {"x": 1}

    async def another(ctx: StepContext) -> CompleteLater:
        ctx.complete_later()
        return CompleteLater()

    for handler, words in ((both, "returned output too"), (another, "other than the one")):
        outcome = await call(handler)
        assert outcome.error is not None
        assert words in outcome.error.message
        assert outcome.non_retryable
        assert outcome.deferred is None


async def test_a_handler_that_raises_after_handing_out_a_token_fails_normally() -> None:
    async def handler(ctx: StepContext) -> None:
        ctx.complete_later()
        raise RuntimeError("could not reach the partner")

    outcome = await call(handler)
    assert outcome.error is not None
    assert outcome.deferred is None  # the token is never recorded


@pytest.mark.parametrize(
    ("timeout", "error"), [(0, ValueError), (-1, ValueError), ("5", TypeError), (True, TypeError)]
)
def test_a_bad_timeout_is_refused_by_name(timeout: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="CompleteLater timeout"):
        CompleteLater(timeout)


def test_tokens_are_unguessable_and_only_well_formed_ones_name_a_step() -> None:
    tokens = {CompleteLater().token for _ in range(100)}
    assert len(tokens) == 100
    assert all(step_of(t) is None for t in tokens)  # made outside a handler: no step
    for junk in (
        "",
        "lct.",
        "lct.a.b.c.d",
        "xyz.r.1.1.s",
        "lct.r.1.1",
        "lct.r.1.1.s.t",
        "lct.r.9999999999.1.s",
    ):
        assert step_of(junk) is None
    assert step_of("lct.r.4.1.secret") == StepRef("r", 4, 1)
