"""The CLI's promises to scripts that need no server: the exit codes documented
in docs/operations.md, refusals grouped, the embedded store named on stderr."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from legato.cli.dlq import refusals_by_reason
from legato.cli.exits import ExitCode, for_finished
from legato.cli.main import cli
from legato.machine.run import RunStatus

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_exit_code_is_documented_with_its_number() -> None:
    text = (DOCS / "operations.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(n): name for n, name in re.findall(r"^\| (\d+) \| `(\w+)` \|", section, re.MULTILINE)}
    assert documented == {code.value: code.name for code in ExitCode}


def test_a_finished_run_has_one_code_per_ending() -> None:
    codes = {status: for_finished(status) for status in RunStatus}
    assert codes[RunStatus.SUCCEEDED] is ExitCode.OK
    assert codes[RunStatus.FAILED] is ExitCode.RUN_FAILED
    assert codes[RunStatus.COMPENSATED] is ExitCode.RUN_COMPENSATED
    assert codes[RunStatus.CANCELLED] is ExitCode.RUN_CANCELLED
    assert codes[RunStatus.SUSPENDED] is ExitCode.STILL_RUNNING
    assert codes[RunStatus.RUNNING] is ExitCode.STILL_RUNNING


def test_replay_refusals_are_grouped_by_what_they_say() -> None:
    a, b = "3f2a1b4c-0000-4000-8000-000000000001", "9e00aa11-0000-4000-8000-000000000002"
    grouped = refusals_by_reason(
        {
            4: f"dead letter 4: run {a} is cancelled; nothing to replay",
            7: f"dead letter 7: run {b} is cancelled; nothing to replay",
            9: "dead letter 9 was replayed by cli:ops",
        }
    )
    assert grouped == [
        ("run … is cancelled; nothing to replay", [4, 7]),
        ("dead letter … was replayed by cli:ops", [9]),
    ]


def test_runs_on_the_embedded_store_say_which_file_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LEGATO_DATABASE_URL", "LEGATO_BROKER_URL", "LEGATO_APP", "LEGATO_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEGATO_EMBEDDED_PATH", str(tmp_path / "here.db"))
    result = CliRunner().invoke(cli, ["runs", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == []
    assert f"no database configured: reading the embedded store at {tmp_path / 'here.db'}" in result.stderr
