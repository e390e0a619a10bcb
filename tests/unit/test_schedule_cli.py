"""``legato schedule`` on the embedded store: create, list, update, pause, resume,
trigger, backfill, delete; a bad expression is refused naming the schedule."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from legato.cli.main import cli

APP = "legato.demo.orders:app"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("LEGATO_DATABASE_URL", "LEGATO_BROKER_URL", "LEGATO_APP", "LEGATO_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEGATO_EMBEDDED_PATH", str(tmp_path / "legato.db"))
    return CliRunner()


def ok(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli, ["--app", APP, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_schedule_commands(run: CliRunner) -> None:
    created = orjson.loads(
        ok(
            run,
            "schedule",
            "create",
            "hourly",
            "--workflow",
            "daily-report",
            "--every",
            "1h",
            "--input",
            '{"report": "hourly"}',
            "--overlap",
            "buffer_one",
        )
    )
    assert created["spec"] == {
        "every": 3600.0,
        "overlap": "buffer_one",
        "catch_up_window": 60.0,
        "jitter": 0.0,
    }
    assert created["source"] == "runtime"
    assert "hourly\tdaily-report\tevery 3600s\truntime\tnext " in ok(run, "schedule", "list")
    updated = orjson.loads(
        ok(run, "schedule", "update", "hourly", "--cron", "30 * * * *", "--tz", "Asia/Tokyo")
    )
    assert updated["spec"]["cron"] == "30 * * * *"
    assert updated["spec"]["overlap"] == "buffer_one"  # kept
    assert updated["input"] == {"report": "hourly"}
    assert orjson.loads(ok(run, "schedule", "pause", "hourly"))["paused"] is True
    assert orjson.loads(ok(run, "schedule", "resume", "hourly"))["next_fire_at"] is not None
    [triggered] = orjson.loads(ok(run, "schedule", "trigger", "hourly"))
    assert triggered["created"] is True
    filled = orjson.loads(
        ok(
            run,
            "schedule",
            "backfill",
            "hourly",
            "--start",
            "2026-01-01T00:00:00+00:00",
            "--end",
            "2026-01-01T02:00:00+00:00",
        )
    )
    assert [f["created"] for f in filled] == [True, True]  # 00:30 and 01:30
    again = orjson.loads(
        ok(
            run,
            "schedule",
            "backfill",
            "hourly",
            "--start",
            "2026-01-01T00:00:00+00:00",
            "--end",
            "2026-01-01T02:00:00+00:00",
        )
    )
    assert [f["created"] for f in again] == [False, False]
    shown = orjson.loads(ok(run, "schedule", "show", "hourly"))
    assert [t["outcome"] for t in shown["ticks"]] == ["triggered"] * 5
    ok(run, "schedule", "delete", "hourly")
    assert "hourly" not in ok(run, "schedule", "list")


def test_a_bad_schedule_is_refused_naming_the_workflow_and_the_schedule(run: CliRunner) -> None:
    result = run.invoke(
        cli, ["--app", APP, "schedule", "create", "bad", "--workflow", "daily-report", "--cron", "0 25 * * *"]
    )
    assert result.exit_code != 0
    assert "workflow 'daily-report': schedule 'bad': invalid cron expression '0 25 * * *'" in result.output
