"""The short chaos session (tests/chaos): a few hundred events, every fault once, in about two minutes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.run import SCENARIOS, run


@pytest.mark.timeout(600)
async def test_a_short_chaos_session_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    verdict = await run(SCENARIOS["short"], tmp_path)
    assert verdict.ok, verdict.table()
    assert verdict.figures["events published"] == 300
