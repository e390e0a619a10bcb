"""Values the database cannot store are refused at the edge, with the reason."""

from __future__ import annotations

import pytest

from legato.app import ResolvedHandler
from legato.clock import SystemClock
from legato.context import StepContext
from legato.machine.run import StepKind
from legato.machine.values import unstorable
from legato.messages import MalformedMessage, decode_json_object
from legato.worker.execute import error_info, invoke


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"ok": "text"}, None),
        ({"nested": [{"deep": "a\x00b"}]}, "NUL character"),
        ({"when": object()}, "not JSON"),
    ],
)
def test_unstorable_names_the_problem(value: object, problem: str | None) -> None:
    found = unstorable(value)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_an_event_body_with_a_nul_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="NUL character"):
        decode_json_object(b'{"name": "a\\u0000b"}')
    assert decode_json_object(b'{"name": "a\\\\u0000b"}') == {
        "name": "a\\u0000b"
    }  # an escaped backslash is fine


async def test_a_handler_output_with_a_nul_fails_the_attempt_without_retry() -> None:
    import anyio

    async def handler(ctx: StepContext) -> dict[str, str]:
        return {"note": "a\x00b"}

    ctx = StepContext("r", "w", 1, "s", 1, 1, StepKind.STEP, {}, {}, 1)
    outcome = await invoke(
        ResolvedHandler("h", handler, True), ctx, None, anyio.CapacityLimiter(1), SystemClock()
    )
    assert outcome.error is not None
    assert "NUL character" in outcome.error.message
    assert outcome.non_retryable


def test_error_text_with_a_nul_is_made_visible() -> None:
    info = error_info(ValueError("bad\x00byte"))
    assert "\x00" not in info.message
    assert "\x00" not in info.traceback
    assert info.message == "bad\\0byte"
