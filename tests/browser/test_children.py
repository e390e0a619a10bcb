"""The run page links a parent and its child runs, both ways."""

from __future__ import annotations

from examples import order_children
from playwright.async_api import Browser, expect

from legato import RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.postgres import PostgresStore
from tests.browser.pages import TOKEN, open_page, serving


async def test_the_run_page_links_a_parent_and_its_children(
    browser: Browser, pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with serving(pg_store, rabbit, app=order_children.app) as site:
        lines = [{"sku": "apple", "qty": 1}, {"sku": "pear", "qty": 1}]
        started = await site.client.start("order", {"order": {"lines": lines}})
        parent = await site.client.wait(started.id, timeout=30)
        assert parent.status is RunStatus.SUCCEEDED
        children = await site.client.children(parent.id)
        assert len(children) == 2
        page = await open_page(browser, f"{site.url}/#token={TOKEN}")
        await page.goto(f"{site.url}/#/runs/{parent.id}")
        rows = page.get_by_test_id("child-row")
        await expect(rows).to_have_count(2)
        await expect(page.get_by_test_id("run-children")).to_contain_text("reserve_line v1")
        await rows.first.get_by_role("link").click()
        await expect(page.get_by_test_id("run-id")).to_have_text(children[0].id)
        await expect(page.get_by_test_id("run-parent")).to_have_text(parent.id)
        await page.get_by_test_id("run-parent").click()
        await expect(page.get_by_test_id("run-id")).to_have_text(parent.id)
