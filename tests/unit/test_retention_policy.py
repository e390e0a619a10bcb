"""The retention policy and a pass's loop, on the embedded store (no server)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from legato import App, Task, Workflow
from legato.clock import ManualClock
from legato.config import load_settings
from legato.errors import ConfigurationError, DefinitionError
from legato.lifecycle.retention import DAY, Retention, RetentionPolicy
from legato.machine.commands import Decision
from legato.machine.decide import decide, start_run
from legato.machine.events import CancelRequested
from legato.machine.vocabulary import HistoryKind
from legato.store.retention import Cutoff
from legato.store.rows import new_run_id
from legato.store.sqlite import SqliteStore
from tests.conftest import ROOT


def h(ctx: object) -> None:
    return None


LONG = Workflow("long", start="a", states={"a": Task(h)}, retention=30 * DAY)
PLAIN = Workflow("plain", start="a", states={"a": Task(h)})


def test_a_workflows_own_period_wins_and_the_default_takes_the_others() -> None:
    policy = RetentionPolicy.of(App([LONG, PLAIN]), retention_days=7, dedupe_days=None)
    assert policy.cutoffs(100 * DAY) == [
        Cutoff("long", 70 * DAY, 30 * DAY),
        Cutoff(None, 93 * DAY, 7 * DAY),  # keys kept as long as the run was
    ]
    assert RetentionPolicy.of(App([PLAIN]), None, 2).cutoffs(DAY) == []
    assert not RetentionPolicy.of(App([PLAIN]), None, None).enabled
    assert RetentionPolicy.of(App([LONG]), None, 2).cutoffs(100 * DAY) == [Cutoff("long", 70 * DAY, 2 * DAY)]


def test_retention_must_be_positive() -> None:
    with pytest.raises(DefinitionError, match="retention must be a positive number"):
        Workflow("w", start="a", states={"a": Task(h)}, retention=0)
    with pytest.raises(ConfigurationError, match="retention_days must be > 0"):
        load_settings(env={"LEGATO_RETENTION_DAYS": "0"})
    assert load_settings(env={"LEGATO_RETENTION_DAYS": "1.5"}).worker.retention_days == 1.5


@pytest.mark.parametrize(
    ("count", "batch"),
    [(7, 3), (600, 600)],  # several batches; one batch larger than a chunk of SQLite's deletes (500)
)
async def test_a_pass_removes_in_batches_until_nothing_is_left(
    tmp_path: Path, count: int, batch: int
) -> None:
    store = SqliteStore(tmp_path / "l.db")
    await store.open()
    await store.migrate()
    clock = ManualClock(1_800_000_000.0)
    ids = []
    for i in range(count):
        run = (
            await store.create_run(start_run(PLAIN, new_run_id(), {}, clock.now(), idempotency_key=f"k{i}"))
        ).run
        done = decide(PLAIN, run, CancelRequested("ops", compensate=False), clock.now())
        assert isinstance(done, Decision)
        await store.apply(done)
        ids.append(run.id)
    clock.advance(8 * DAY)
    retention = Retention(store, RetentionPolicy(default=7 * DAY), clock, holder="t", batch=batch)
    report = await retention.run()
    assert report is not None
    assert report.removed.runs == count
    assert [await store.load_run(i) for i in ids] == [None] * count
    # The keys' window (7 days from the removal) ends, and the next pass forgets them.
    clock.advance(7 * DAY)
    again = await retention.run()
    assert again is not None
    assert (again.removed.runs, again.removed.retired_keys) == (0, count)
    await store.close()


async def test_export_writes_a_days_runs_of_a_workflow_and_removes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    store = SqliteStore(db)
    await store.open()
    await store.migrate()
    day_start = 1_800_057_600.0  # 2027-01-16T00:00:00Z
    ids = []
    for at in (day_start + 10, day_start + 86_399, day_start + 86_400):
        run = (await store.create_run(start_run(PLAIN, new_run_id(), {"at": at}, at))).run
        cancel = decide(PLAIN, run, CancelRequested("ops", compensate=False), at)
        assert isinstance(cancel, Decision)
        await store.apply(cancel)
        ids.append(run.id)
    await store.close()
    env = {**os.environ, "LEGATO_DATABASE_URL": f"sqlite:///{db}", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "legato",
        "export",
        "plain",
        "--day",
        "2027-01-16",
        "--to",
        str(tmp_path / "a"),
    ]
    done = await anyio.run_process(command, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    path = tmp_path / "a" / "plain" / "2027-01-16.jsonl"
    assert done.stdout.decode().strip() == f"wrote 2 runs to {path}"
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [line["run"]["id"] for line in lines] == ids[:2]
    assert [entry["kind"] for entry in lines[0]["history"]][-1] == HistoryKind.RUN_FINISHED
    # Again: the file is written anew, not appended to.
    await anyio.run_process(command, env=env, check=True)
    assert len(path.read_bytes().splitlines()) == 2
    store = SqliteStore(db)
    await store.open()
    assert all([await store.load_run(i) for i in ids])
    await store.close()
