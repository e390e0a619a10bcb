"""The dashboard end to end in headless Chromium, as a person sees it.

A real worker and the dashboard run in the test's process on Postgres and
RabbitMQ; Debian's Chromium loads the pages. The tests read what is on the
screen (numbers, bars drawn, the highlighted state), click the buttons an
operator clicks, and save screenshots under artifacts/.
"""

from __future__ import annotations

import re

import aiohttp
from playwright.async_api import Browser, expect

from legato import Every, RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.machine.run import Run
from legato.machine.vocabulary import TickOutcome
from legato.store.postgres import PostgresStore
from tests.apps import board
from tests.browser.pages import TOKEN, Site, open_page, place_orders, screenshot, serving, settled
from tests.integration.harness import all_runs, eventually, finished


async def test_the_overview_shows_the_numbers_and_charts_and_updates_live(
    browser: Browser, pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with serving(pg_store, rabbit) as site:
        await place_orders(site, 3, "ok")
        await settled(site, 3)
        board.Payments.up = False
        await place_orders(site, 1, "down")
        await site.broker.publish_event("refund.requested", b'{"qty": 2}', message_id="refund-1")
        await settled(site, 5)

        page = await open_page(browser, f"{site.url}/#token={TOKEN}")
        await expect(page.get_by_test_id("tile-succeeded").locator(".value")).to_have_text("3")
        await expect(page.get_by_test_id("tile-failed").locator(".value")).to_have_text("1")
        await expect(page.get_by_test_id("tile-running").locator(".value")).to_have_text("1")
        # The throughput chart draws a bar per workflow and hour; their counts add up.
        bars = page.get_by_test_id("chart-throughput").locator("rect.bar")
        await expect(bars.first).to_be_visible()
        counts = [int(await bar.get_attribute("data-count") or 0) for bar in await bars.all()]
        assert sum(counts) == 4
        assert (await bars.first.bounding_box() or {"height": 0})["height"] > 10
        failure = page.get_by_test_id("chart-failure")
        await expect(failure).to_contain_text("order")
        await expect(failure).to_contain_text("25%")
        await expect(page.get_by_test_id("chart-sla")).to_contain_text("100%")
        charge = page.locator('[data-testid=step-row][data-step="order.charge"]')
        # Three charges succeeded; the fourth order's two attempts failed.
        await expect(charge.get_by_test_id("success-rate")).to_have_text("60%")
        await expect(page.get_by_test_id("errors-table")).to_contain_text("ConnectionError")
        await expect(page.get_by_test_id("nav-dead-letters")).to_have_text("1")
        await expect(page.get_by_test_id("live")).to_have_class("live on")
        await screenshot(page, "dashboard-overview")

        # New work shows up without a reload.
        board.Payments.up = True
        await place_orders(site, 2, "later")
        await expect(page.get_by_test_id("tile-succeeded").locator(".value")).to_have_text(
            "5", timeout=20_000
        )


async def test_a_run_page_shows_where_the_run_is_and_a_signal_moves_it(
    browser: Browser, pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with serving(pg_store, rabbit) as site:
        await site.broker.publish_event("refund.requested", b'{"qty": 1}', message_id="refund-1")
        [run] = await eventually(lambda: _waiting_for_approval(site))

        page = await open_page(browser, f"{site.url}/#token={TOKEN}")
        await page.goto(f"{site.url}/#/runs/{run.id}")
        graph = page.get_by_test_id("run-graph")
        await expect(graph.locator('[data-state="approve"]')).to_have_class("node current")
        await expect(graph.locator('[data-state="check"]')).to_have_class("node visited")
        await expect(page.get_by_test_id("run-status")).to_have_text("running")
        await expect(page.get_by_test_id("action-retry")).to_be_disabled()
        await expect(page.get_by_test_id("timeline")).to_contain_text("awaiting signal")
        await screenshot(page, "dashboard-run-waiting")

        await page.get_by_test_id("signal-data").fill('{"approved_by": "dora"}')
        await page.get_by_test_id("action-signal").click()
        await expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=20_000)
        await expect(graph.locator('[data-state="done"]')).to_have_class("node visited")
        await expect(page.get_by_test_id("run-data")).to_contain_text('"approved_by": "dora"')
        await expect(page.get_by_test_id("timeline")).to_contain_text("by dashboard")
        done = await site.client.get(run.id)
        assert done.status is RunStatus.SUCCEEDED
        history = await site.store.history(run.id)
        assert [e.actor for e in history if e.kind == "signal_received"] == ["dashboard"]


async def test_a_run_is_paused_and_resumed_from_its_page(
    browser: Browser, pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with serving(pg_store, rabbit) as site:
        await site.broker.publish_event("refund.requested", b'{"qty": 1}', message_id="refund-pause")
        [run] = await eventually(lambda: _waiting_for_approval(site))
        page = await open_page(browser, f"{site.url}/#token={TOKEN}")
        await page.goto(f"{site.url}/#/runs/{run.id}")
        page.on("dialog", lambda dialog: dialog.accept())
        await expect(page.get_by_test_id("action-resume")).to_be_disabled()
        await page.get_by_test_id("action-pause").click()
        await expect(page.get_by_test_id("run-status")).to_have_text("paused", timeout=20_000)
        await expect(page.get_by_test_id("action-pause")).to_be_disabled()
        await expect(page.get_by_test_id("timeline")).to_contain_text("operator pause")
        await screenshot(page, "dashboard-run-paused")
        await page.get_by_test_id("action-resume").click()
        await expect(page.get_by_test_id("run-status")).to_have_text("running", timeout=20_000)
        history = await site.store.history(run.id)
        acted = [(str(e.kind), e.actor) for e in history if e.kind in ("operator_pause", "operator_resume")]
        assert acted == [("operator_pause", "dashboard"), ("operator_resume", "dashboard")]


async def _waiting_for_approval(site: Site) -> list[Run] | None:
    runs = await all_runs(site.store, "refund")
    return [r for r in runs if r.current_states == ("approve",)] or None


async def test_a_dead_letter_is_inspected_and_replayed(
    browser: Browser, pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with serving(pg_store, rabbit) as site:
        board.Payments.up = False
        await place_orders(site, 1, "down")
        [failed] = await eventually(lambda: _failed(site))
        [letter] = await site.store.list_dead_letters()
        board.Payments.up = True

        page = await open_page(browser, f"{site.url}/#token={TOKEN}")
        await page.goto(f"{site.url}/#/dead-letters")
        row = page.locator(f'[data-testid=letter-row][data-letter="{letter.id}"]')
        await expect(row).to_contain_text("order.charge")
        await expect(row).to_contain_text("open")
        await expect(page.get_by_test_id("groups-table")).to_contain_text("ConnectionError")
        await page.get_by_test_id(f"inspect-{letter.id}").click()
        await expect(page.get_by_test_id("inspect")).to_contain_text("payment gateway timed out")
        await expect(page.get_by_test_id("inspect")).to_contain_text("Traceback")
        await screenshot(page, "dashboard-dead-letters")

        await page.get_by_test_id(f"replay-{letter.id}").click()
        await expect(page.get_by_test_id("toast").first).to_contain_text(f"replayed #{letter.id}")
        # The run resumes and succeeds; the page shows the letter replayed, live.
        done = await finished(site.store, failed.id, timeout=20)
        assert done.status is RunStatus.SUCCEEDED
        await page.get_by_test_id("letters-status").select_option("all")
        await expect(row).to_contain_text("replayed", timeout=20_000)
        await expect(page.get_by_test_id(f"replay-{letter.id}")).to_be_disabled()
        await page.goto(f"{site.url}/#/runs/{failed.id}")
        await expect(page.get_by_test_id("run-status")).to_have_text("succeeded")
        await expect(page.get_by_test_id("run-graph").locator('[data-state="ship"]')).to_have_class(
            "node visited"
        )
        await screenshot(page, "dashboard-run-replayed")
        history = await site.store.history(failed.id)
        assert any(e.kind == "operator_retry" and e.actor == "dashboard" for e in history)


async def _failed(site: Site) -> list[Run] | None:
    runs = await all_runs(site.store)
    return [r for r in runs if r.status is RunStatus.FAILED] or None


async def test_actions_need_the_token_and_illegal_ones_say_why(
    browser: Browser, pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with serving(pg_store, rabbit) as site:
        await place_orders(site, 1, "ok")
        [run] = await settled(site, 1)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{site.url}/api/runs/{run.id}/cancel") as response:
                assert response.status == 401
            async with session.post(
                f"{site.url}/api/runs/{run.id}/cancel", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as response:
                assert response.status == 409
                assert "is succeeded; a finished run takes no cancel" in (await response.json())["error"]
            async with session.post(
                f"{site.url}/api/runs/{run.id}/launch", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as response:
                assert response.status == 400

        # In the browser: no token yet, so the first action asks for it.
        page = await open_page(browser, f"{site.url}/#/runs/{run.id}")
        await expect(page.get_by_test_id("run-status")).to_have_text("succeeded")
        await page.evaluate(f"fetch('/api/runs/{run.id}/retry', {{method: 'POST'}}).then(r => r.status)")
        retry = page.get_by_test_id("action-retry")
        await expect(retry).to_be_disabled()
        # A refused action is explained on screen.
        await page.evaluate("document.querySelector('[data-testid=action-cancel]').disabled = false")
        page.on("dialog", lambda dialog: dialog.accept())
        await page.get_by_test_id("action-cancel").click()
        await expect(page.locator("#token-dialog")).to_be_visible()
        await page.get_by_test_id("token-input").fill(TOKEN)
        await page.get_by_test_id("token-save").click()
        await expect(page.get_by_test_id("toast").first).to_contain_text("cancel refused")
        await expect(page.get_by_test_id("toast").first).to_contain_text("a finished run takes no cancel")

        # The runs list filters by status.
        board.Payments.up = False
        await place_orders(site, 1, "down")
        await eventually(lambda: _failed(site))
        await page.goto(f"{site.url}/#/runs")
        await expect(page.get_by_test_id("run-row")).to_have_count(2)
        await page.get_by_test_id("filter-status").select_option("failed")
        await expect(page).to_have_url(re.compile(r"#/runs\?status=failed$"))
        # The filtered list is fetched and drawn; on a busy 2-core machine (Postgres,
        # RabbitMQ, a worker and Chromium) that can take longer than the default 5 s.
        await expect(page.get_by_test_id("run-row")).to_have_count(1, timeout=20_000)
        await expect(page.get_by_test_id("run-row").get_by_test_id("status")).to_have_text("failed")
        await screenshot(page, "dashboard-runs")
        # ... and by search attribute (the order's qty), key and creation time.
        await page.get_by_test_id("filter-status").select_option("")
        await page.get_by_test_id("filter-where").fill("qty=1")
        await page.get_by_test_id("filter-since").fill("1h")
        await page.get_by_test_id("filter-apply").click()
        await expect(page.get_by_test_id("run-row")).to_have_count(2)  # "ok-0" and "down-0"
        await page.get_by_test_id("filter-key").fill("order:down-0")  # as stored: per workflow
        await page.get_by_test_id("filter-apply").click()
        await expect(page.get_by_test_id("run-row")).to_have_count(1)
        await expect(page.get_by_test_id("run-row").get_by_test_id("status")).to_have_text("failed")
        await page.get_by_test_id("filter-where").fill("qty=2")
        await page.get_by_test_id("filter-apply").click()
        await expect(page.get_by_test_id("runs-table")).to_have_text("no runs match")
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
            async with session.get(f"{site.url}/api/runs?where=customer..id=1") as response:
                assert response.status == 400
                assert "has an empty key" in (await response.json())["error"]
            async with session.get(f"{site.url}/api/runs?since=soon") as response:
                assert response.status == 400
                assert "neither an ISO time" in (await response.json())["error"]


async def test_schedules_are_listed_paused_resumed_and_triggered(
    browser: Browser, pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with serving(pg_store, rabbit) as site:
        await site.client.schedules.create("order", Every(3600, name="hourly-orders", input={"qty": 1}))
        page = await open_page(browser, f"{site.url}/#token={TOKEN}")
        await page.goto(f"{site.url}/#/schedules")
        row = page.locator('[data-testid=schedule-row][data-schedule="hourly-orders"]')
        await expect(row).to_contain_text("every 3600s")
        await expect(row).to_contain_text("runtime")
        await page.get_by_test_id("pause-hourly-orders").click()
        await expect(row.get_by_test_id("schedule-next")).to_have_text("paused")
        assert (await site.client.schedules.get("hourly-orders")).paused
        await page.get_by_test_id("resume-hourly-orders").click()
        await expect(page.get_by_test_id("pause-hourly-orders")).to_be_visible()
        assert not (await site.client.schedules.get("hourly-orders")).paused
        await page.get_by_test_id("trigger-hourly-orders").click()
        toasts = page.get_by_test_id("toast")
        await expect(toasts.filter(has_text="triggered hourly-orders")).to_be_visible()
        await screenshot(page, "dashboard-schedules")
        [run] = await eventually(lambda: all_runs(site.store, "order"))
        assert run.idempotency_key is not None
        assert run.idempotency_key.startswith("order:schedule:hourly-orders:")
        [tick] = await site.client.schedules.ticks("hourly-orders")
        assert (tick.outcome, tick.run_id) == (TickOutcome.TRIGGERED, run.id)
