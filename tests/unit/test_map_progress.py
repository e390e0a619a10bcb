"""A map's progress (done / failed / running / pending of N) where people look:
``legato show``, the dashboard's run page and the metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from legato import Branch, Map, Task, Workflow
from legato.cli.main import cli
from legato.http.dashboard.views import run_detail
from legato.machine.commands import Decision
from legato.machine.events import StepFailed, StepSucceeded
from legato.machine.run import Run
from legato.observe import AppliedInput
from legato.store.rows import new_run_id
from legato.store.sqlite import SqliteStore
from legato.telemetry.metrics import Metrics
from tests.unit.sim import Sim, boom


def h(ctx: Any) -> None:
    return None


WF = Workflow(
    "fan",
    start="each",
    states={
        "each": Map("lines", Branch("work", {"work": Task(h)}), max_concurrency=2, tolerated_failures=2),
    },
)
EXPECTED = {"state": "each", "total": 5, "done": 1, "failed": 1, "running": 2, "pending": 1, "failing": False}


def mid_map() -> Sim:
    sim = Sim(WF).start({"lines": list("abcde")}, run_id=new_run_id())
    first, second = (t.seq for t in sim.run.tokens if t.state == "work")  # type: ignore[union-attr]
    sim.feed(StepSucceeded(first, 1, None))
    sim.feed(StepFailed(second, 1, boom(), non_retryable=True))
    return sim


def _without_seq(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in entry.items() if k != "seq"} for entry in entries]


def test_the_dashboards_run_page_has_the_progress() -> None:
    run = mid_map().run
    assert run is not None
    assert _without_seq(run_detail(run)["maps"]) == [EXPECTED]


async def _store(path: Path, sim: Sim) -> None:
    store = SqliteStore(path)
    await store.open()
    try:
        await store.migrate()
        first, *rest = sim.decisions
        await store.create_run(first)
        for decision in rest:
            await store.apply(decision)
    finally:
        await store.close()


def test_legato_show_prints_the_progress(tmp_path: Path) -> None:
    sim = mid_map()
    path = tmp_path / "legato.db"
    anyio.run(_store, path, sim)
    run: Run | None = sim.run
    assert run is not None
    runner = CliRunner()
    env = {"LEGATO_DATABASE_URL": f"sqlite:///{path}"}
    shown = runner.invoke(cli, ["show", run.id], env=env)
    assert shown.exit_code == 0, shown.output
    assert "map each: 1 done, 1 failed, 2 running, 1 pending of 5" in shown.output
    as_json = runner.invoke(cli, ["show", run.id, "--json"], env=env)
    assert _without_seq(orjson.loads(as_json.stdout)["run"]["maps"]) == [EXPECTED]


def test_metrics_count_the_items_given_and_finished() -> None:
    metrics = Metrics()
    observer = metrics.observer()
    sim = mid_map()
    for number, decision in enumerate(sim.decisions):
        assert isinstance(decision, Decision)
        observer.applied(AppliedInput(decision, created=number == 0))
    found = {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name == "legato_map_items_total"
    }
    assert found == {"given": 5.0, "succeeded": 1.0, "failed": 1.0}
