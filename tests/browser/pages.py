"""A worker and the dashboard for the browser tests, opening pages, keeping screenshots."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import anyio
import orjson
from playwright.async_api import Browser, Page

from legato import App, RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.config import HttpSettings
from legato.http.dashboard.serve import serve_dashboard
from legato.http.dashboard.service import Dashboard
from legato.machine.run import Run
from legato.store.insights import insights_for
from legato.store.postgres import PostgresStore
from tests.apps import board
from tests.conftest import ROOT
from tests.integration.harness import all_runs, eventually, running

CHROMIUM = os.environ.get("LEGATO_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"


async def assert_nothing_overflows(page: Page) -> None:
    """No table is wider than its panel, and every button in a table is inside its panel."""
    found = await page.evaluate(
        """() => [...document.querySelectorAll('.panel table')].map((table) => {
            const panel = table.closest('.panel').getBoundingClientRect();
            const buttons = [...table.querySelectorAll('button')].map((b) => b.getBoundingClientRect());
            return {
                wide: table.getBoundingClientRect().right > panel.right + 0.5,
                hidden: buttons.filter((b) => b.left < panel.left || b.right > panel.right + 0.5).length,
                wrap: table.closest('.table-wrap') ? table.closest('.table-wrap').scrollWidth > table.closest('.table-wrap').clientWidth : false,
            };
        })"""
    )
    assert found, "no table on the page"
    assert all(not t["wide"] and not t["hidden"] and not t["wrap"] for t in found), found


async def open_page(
    browser: Browser, url: str, width: int = 1400, height: int = 1000, headers: dict[str, str] | None = None
) -> Page:
    page = await browser.new_page(viewport={"width": width, "height": height}, extra_http_headers=headers)
    await page.goto(url)
    return page


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


TOKEN = "browser-test-token"


@dataclass
class Site:
    url: str
    store: PostgresStore
    broker: RabbitMQBroker
    client: Client


@contextlib.asynccontextmanager
async def serving(
    pg_store: PostgresStore,
    rabbit: RabbitMQBroker,
    settings: HttpSettings | None = None,
    app: App | None = None,
) -> AsyncIterator[Site]:
    """A worker and the dashboard. Not a fixture: its task groups must be
    entered and left in the test's own task."""
    board.Payments.up = True
    app = app or board.app
    insights = insights_for(pg_store)
    await insights.open()
    dashboard = Dashboard(pg_store, insights, app, rabbit, cache_seconds=0)
    try:
        async with running(app, pg_store, rabbit), anyio.create_task_group() as group:
            http = settings or HttpSettings(port=0, token=TOKEN)
            _, port = await group.start(partial(serve_dashboard, dashboard, http, interval=0.2))
            yield Site(
                f"http://127.0.0.1:{port}",
                pg_store,
                rabbit,
                Client(pg_store, rabbit, app, actor="test"),
            )
            group.cancel_scope.cancel()
    finally:
        await insights.close()
        board.Payments.up = True


async def place_orders(site: Site, count: int, prefix: str) -> None:
    for i in range(count):
        await site.broker.publish_event(
            "order.placed", orjson.dumps({"qty": i + 1}), message_id=f"{prefix}-{i}"
        )


async def settled(site: Site, count: int) -> list[Run]:
    async def check() -> list[Run] | None:
        runs = await all_runs(site.store)
        busy = [r for r in runs if r.status is RunStatus.RUNNING and r.current_states != ("approve",)]
        return runs if len(runs) >= count and not busy else None

    found: list[Run] = await eventually(check)
    return found
