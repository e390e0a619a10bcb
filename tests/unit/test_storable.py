"""Values the database cannot store are refused at the edge, with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from legato.app import App, ResolvedHandler
from legato.client import Client
from legato.clock import SystemClock
from legato.context import StepContext
from legato.errors import LegatoError
from legato.machine.run import StepKind
from legato.machine.values import unstorable
from legato.messages import MalformedMessage, decode_json_object
from legato.store.sqlite import SqliteStore
from legato.worker.execute import error_info, invoke
from tests.contract.workflow import WF


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


async def test_a_signal_name_or_a_cancel_reason_with_a_nul_is_refused_before_the_store(
    tmp_path: Path,
) -> None:
    """An operator's reason or signal name goes to the history: refused at the
    edge with the reason, not by Postgres in the middle of the transaction."""
    store = SqliteStore(tmp_path / "legato.db")
    await store.open()
    await store.migrate()
    try:
        client = Client(store, None, App([WF]), actor="ops")
        run = await client.start("contract", {})
        with pytest.raises(LegatoError, match="the signal's name cannot be stored: it contains a NUL"):
            await client.signal(run.id, "go\x00")
        with pytest.raises(LegatoError, match="the reason cannot be stored: it contains a NUL"):
            await client.cancel(run.id, reason="because\x00")
        assert (await client.cancel(run.id, reason="because")).status.value == "cancelled"
    finally:
        await store.close()
