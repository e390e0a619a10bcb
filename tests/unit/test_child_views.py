"""Parent and children where people look: ``legato runs --parent``, ``legato show``
(both ways) and the dashboard's run page; and the child's place in its parent's trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
from click.testing import CliRunner
from examples import order_children
from examples._run import with_worker

from legato import Client, Run, RunStatus
from legato.cli.main import cli
from legato.http.dashboard.service import Dashboard
from legato.store.sqlite import SqliteStore
from legato.store.sqlite.insights import SqliteInsights
from legato.telemetry.context import root_context


async def _family(path: Path) -> tuple[Run, list[Run]]:
    async def scenario(client: Client) -> tuple[Run, list[Run]]:
        lines = [{"sku": "apple", "qty": 1}, {"sku": "pear", "qty": 2}]
        run = await client.start("order", {"order": {"lines": lines}})
        done = await client.wait(run.id, timeout=30)
        return done, await client.children(run.id)

    result: tuple[Run, list[Run]] = await with_worker(order_children.app, scenario, path)
    return result


def test_runs_parent_and_show_link_parent_and_children(tmp_path: Path) -> None:
    path = tmp_path / "legato.db"
    parent, children = anyio.run(_family, path)
    assert parent.status is RunStatus.SUCCEEDED
    assert len(children) == 2
    runner = CliRunner()
    env = {"LEGATO_DATABASE_URL": f"sqlite:///{path}"}

    listed = runner.invoke(cli, ["runs", "--parent", parent.id, "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert [r["id"] for r in orjson.loads(listed.stdout)] == [c.id for c in children]
    assert all(r["parent"]["run"] == parent.id for r in orjson.loads(listed.stdout))
    none = runner.invoke(cli, ["runs", "--parent", parent.id, "--status", "failed", "--json"], env=env)
    assert orjson.loads(none.stdout) == []

    shown = runner.invoke(cli, ["show", parent.id], env=env)
    assert shown.exit_code == 0, shown.output
    assert "Children" in shown.output
    assert all(c.id in shown.output for c in children)
    as_json = orjson.loads(runner.invoke(cli, ["show", parent.id, "--json"], env=env).stdout)
    assert [c["id"] for c in as_json["children"]] == [c.id for c in children]
    child_shown = runner.invoke(cli, ["show", children[0].id], env=env)
    assert f"parent: {parent.id}" in child_shown.output

    unknown = runner.invoke(cli, ["runs", "--parent", "no-such-run"], env=env)
    assert unknown.exit_code != 0
    assert "no-such-run" in unknown.output
    assert "Traceback" not in unknown.output


async def test_the_dashboard_run_page_links_parent_and_children(tmp_path: Path) -> None:
    path = tmp_path / "legato.db"
    parent, children = await _family(path)
    store = SqliteStore(path)
    await store.open()
    try:
        dashboard = Dashboard(store, SqliteInsights(path), order_children.app)
        page: dict[str, Any] = await dashboard.run(parent.id)
        assert [c["id"] for c in page["children"]] == [c.id for c in children]
        assert page["run"]["parent"] is None
        child_page: dict[str, Any] = await dashboard.run(children[0].id)
        assert child_page["run"]["parent"] == parent.id
        assert child_page["children"] == []
    finally:
        await store.close()


async def test_a_child_run_is_in_its_parents_trace(tmp_path: Path) -> None:
    parent, children = await _family(tmp_path / "legato.db")
    trace = root_context(parent).trace_id
    assert all(root_context(c).trace_id == trace for c in children)
    # The child's root span's parent is the parent's root span.
    assert all(c.trace_context and f"{trace:032x}" in c.trace_context["traceparent"] for c in children)
