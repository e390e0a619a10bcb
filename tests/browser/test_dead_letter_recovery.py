"""The dead-letter view in headless Chromium: Replay only where a replay can work, with the
reason where it cannot, and Resolve to close a dead letter without a replay."""

from __future__ import annotations

from functools import partial

import anyio
from playwright.async_api import Browser, expect

from legato import RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.config import HttpSettings
from legato.http.dashboard.serve import serve_dashboard
from legato.http.dashboard.service import Dashboard
from legato.store.base import DeadLetterRecord
from legato.store.insights import insights_for
from legato.store.postgres import PostgresStore
from tests.apps import endings
from tests.browser.pages import TOKEN, assert_nothing_overflows, open_page, screenshot
from tests.integration.harness import eventually, running
from tests.integration.test_recovery import SETTINGS

WAIT = 20_000
"""Milliseconds a page assertion waits: generous, for a machine shared with other test runs."""


async def test_replay_is_offered_only_where_it_can_work_and_resolve_closes_the_rest(
    browser: Browser, pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    endings.FIXED["handler"] = False
    insights = insights_for(pg_store)
    await insights.open()
    dashboard = Dashboard(pg_store, insights, endings.app, rabbit, cache_seconds=0)
    client = Client(pg_store, rabbit, endings.app, actor="test")
    try:
        async with running(endings.app, pg_store, rabbit, SETTINGS), anyio.create_task_group() as group:
            _, port = await group.start(
                partial(serve_dashboard, dashboard, HttpSettings(port=0, token=TOKEN), interval=0.2)
            )
            undone = await client.start(endings.workflow_name("compensated", "resolve"), {})
            failed = await client.start(endings.workflow_name("failed_saga", "replay"), {})
            for run, status in ((undone, RunStatus.COMPENSATED), (failed, RunStatus.FAILED)):
                assert (await client.wait(run.id, timeout=30)).status is status
            letters = {d.run_id: d.id for d in await client.dead_letters()}
            gone, fixable = letters[undone.id], letters[failed.id]

            page = await open_page(browser, f"{dashboard_url(port)}/#token={TOKEN}")
            await page.goto(f"{dashboard_url(port)}/#/dead-letters")
            # A compensated run cannot be resumed: Replay is greyed out, and the page says why.
            await expect(page.get_by_test_id(f"replay-{gone}")).to_be_disabled(timeout=WAIT)
            await expect(page.get_by_test_id(f"refusal-{gone}")).to_contain_text(
                f"cannot replay: run {undone.id} is compensated", timeout=WAIT
            )
            # A run that failed in a step (in a workflow with compensations) can.
            await expect(page.get_by_test_id(f"replay-{fixable}")).to_be_enabled(timeout=WAIT)
            await expect(page.get_by_test_id(f"refusal-{fixable}")).to_have_count(0, timeout=WAIT)
            await assert_nothing_overflows(page)
            await screenshot(page, "dashboard-dead-letter-resolve")

            await page.get_by_test_id(f"resolve-{gone}").click()
            await expect(page.get_by_test_id("toast").filter(has_text=f"resolved #{gone}")).to_be_visible(
                timeout=WAIT
            )
            resolved = await eventually(lambda: _closed(client, gone))
            assert (resolved.status, resolved.resolved_by) == ("resolved", "dashboard")
            assert (await client.get(undone.id)).status is RunStatus.COMPENSATED  # left as it is

            endings.FIXED["handler"] = True
            await page.get_by_test_id(f"replay-{fixable}").click()
            await expect(page.get_by_test_id("toast").filter(has_text=f"replayed #{fixable}")).to_be_visible(
                timeout=WAIT
            )
            assert (await client.wait(failed.id, timeout=30)).status is RunStatus.SUCCEEDED
            await page.get_by_test_id("letters-status").select_option("all")
            await expect(page.get_by_test_id(f"resolve-{gone}")).to_be_disabled(timeout=WAIT)
            await expect(page.get_by_test_id(f"resolve-{fixable}")).to_be_disabled(timeout=WAIT)
            group.cancel_scope.cancel()
    finally:
        await insights.close()
        endings.FIXED["handler"] = False


def dashboard_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


async def _closed(client: Client, letter: int) -> DeadLetterRecord | None:
    found = await client.dead_letter(letter)
    return found if found.status != "open" else None
