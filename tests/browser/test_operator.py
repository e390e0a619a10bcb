"""An on-call person working in the dashboard while it updates live: what they
type, what they opened and where they scrolled survive every live update; the
dead letters are paged and inspected beside their row; every action names who
did it."""

from __future__ import annotations

import orjson
import pytest
from playwright.async_api import Browser, Page, expect

from legato import RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.config import HttpSettings
from legato.errors import OperationRefused
from legato.machine.run import Run
from legato.store.base import PoisonMessage
from legato.store.postgres import PostgresStore
from tests.apps import board
from tests.browser.pages import (
    TOKEN,
    Site,
    assert_nothing_overflows,
    open_page,
    place_orders,
    screenshot,
    serving,
    settled,
)
from tests.integration.harness import all_runs, eventually

ALICE = "alice-token-0123456789"


async def refunds_waiting(site: Site, count: int) -> list[Run]:
    for i in range(count):
        await site.broker.publish_event("refund.requested", b'{"qty": 1}', message_id=f"refund-{i}")

    async def waiting() -> list[Run] | None:
        runs = [r for r in await all_runs(site.store, "refund") if r.current_states == ("approve",)]
        return runs if len(runs) == count else None

    found: list[Run] = await eventually(waiting)
    return found


async def loads(page: Page) -> int:
    """How many times the view was drawn or patched."""
    return int(await page.get_by_test_id("view").get_attribute("data-loaded") or 0)


async def test_live_updates_keep_the_payload_being_typed_and_the_scroll(
    browser: Browser, pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with serving(pg_store, rabbit) as site:
        [run] = await refunds_waiting(site, 1)
        page = await open_page(browser, f"{site.url}/#token={TOKEN}", height=500)
        await page.goto(f"{site.url}/#/runs/{run.id}")
        await expect(page.get_by_test_id("timeline")).to_contain_text("awaiting signal")
        # Every part of the page is an element (a run without dead letters leaves no stray "null").
        assert await page.evaluate(
            "[...document.getElementById('view').childNodes].every((n) => n.nodeType === 1)"
        )
        payload = page.get_by_test_id("signal-data")
        await payload.click()
        await page.keyboard.type('{"approved_by": "do')
        await page.evaluate("document.querySelector('[data-testid=signal-data]').probe = 'same node'")
        await page.evaluate("window.scrollTo(0, 120)")
        before = await loads(page)

        # Something happens to the run while the operator types: the page shows it, live...
        with pytest.raises(OperationRefused):
            await site.client.signal(run.id, "nudge")  # refused, and the refusal is in the history
        await expect(page.locator("[data-kind=rejected]")).to_have_count(1, timeout=20_000)
        assert await loads(page) > before
        # ...and leaves alone what they were doing.
        await expect(payload).to_have_value('{"approved_by": "do')
        await expect(payload).to_be_focused()
        assert await page.evaluate("document.querySelector('[data-testid=signal-data]').probe") == "same node"
        assert await page.evaluate("window.scrollY") == 120

        await page.keyboard.type('ra"}')
        await page.get_by_test_id("action-signal").click()
        await expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=20_000)
        done = await site.client.get(run.id)
        assert done.data["approved_by"] == "dora"
        # The spent payload no longer holds the actions: they catch up with the finished run.
        await expect(page.get_by_test_id("action-cancel")).to_be_disabled()
        await expect(payload).to_have_count(0)


async def poison(store: PostgresStore, count: int, first: int = 0) -> None:
    for i in range(first, first + count):
        reason = f"body is not JSON: {'x' * 120}{i}" if i % 10 == 0 else "body is not JSON"
        await store.record_poison(
            PoisonMessage(reason, "q", "order.placed", b"{", f"m-{i}", {}, f"fp-{i}"), 1000.0 + i
        )


async def test_dead_letters_are_paged_and_inspected_beside_their_row_through_live_updates(
    browser: Browser, pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with serving(pg_store, rabbit) as site:
        await poison(site.store, 130)
        page = await open_page(browser, f"{site.url}/#token={TOKEN}", width=1000, height=700)
        await page.goto(f"{site.url}/#/dead-letters")
        await expect(page.get_by_test_id("nav-dead-letters")).to_have_text("130")
        await expect(page.get_by_test_id("letters-shown")).to_have_text("1\u2013100 of 130")
        await expect(page.get_by_test_id("letter-row")).to_have_count(100)
        await expect(page.get_by_test_id("letters-newer")).to_be_disabled()

        # No table is wider than its panel, and every row's buttons are on screen within it.
        await assert_nothing_overflows(page)

        # The inspection opens right under its row, far down the list.
        row = page.get_by_test_id("letter-row").nth(60)
        letter = await row.get_attribute("data-letter")
        await page.get_by_test_id(f"inspect-{letter}").click()
        inspect = page.get_by_test_id("inspect")
        await expect(inspect).to_contain_text(f"Dead letter #{letter}")
        row_box, inspect_box = await row.bounding_box(), await inspect.bounding_box()
        assert row_box is not None
        assert inspect_box is not None
        assert abs(inspect_box["y"] - (row_box["y"] + row_box["height"])) < 2
        await screenshot(page, "dashboard-dead-letter-inspected")

        # A new dead letter arrives: the list shows it, the inspection stays open beside its row.
        await poison(site.store, 1, first=130)
        await expect(page.get_by_test_id("letters-shown")).to_have_text("1\u2013100 of 131", timeout=20_000)
        await expect(inspect).to_be_visible()
        beside = await page.evaluate(
            "document.querySelector('[data-testid=inspect]').closest('tr').previousElementSibling.dataset.letter"
        )
        assert beside == letter
        # Closing it is the operator's choice.
        await page.get_by_test_id("inspect-close").click()
        await expect(inspect).to_have_count(0)

        await page.get_by_test_id("letters-older").click()
        await expect(page.get_by_test_id("letters-shown")).to_have_text("101\u2013131 of 131")
        await expect(page.get_by_test_id("letter-row")).to_have_count(31)
        await expect(page.get_by_test_id("letters-older")).to_be_disabled()


async def test_a_failed_run_is_not_drawn_as_a_success(
    browser: Browser, pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    async with serving(pg_store, rabbit) as site:
        await place_orders(site, 1, "ok")
        await settled(site, 1)
        board.Payments.up = False
        await place_orders(site, 1, "down")

        async def both() -> list[Run] | None:
            runs = await all_runs(site.store)
            return runs if {r.status for r in runs} == {RunStatus.SUCCEEDED, RunStatus.FAILED} else None

        runs = await eventually(both)
        page = await open_page(browser, f"{site.url}/#token={TOKEN}")
        for run in runs:
            await page.goto(f"{site.url}/#/runs/{run.id}")
            finished = page.locator("[data-kind=run_finished]")
            await expect(finished).to_contain_text(run.status.value)
            expected = "good" if run.status is RunStatus.SUCCEEDED else "bad"
            await expect(finished).to_have_class(expected)
            if run.status is RunStatus.FAILED:
                await expect(page.get_by_test_id("letters-table")).to_be_visible()
                await assert_nothing_overflows(page)


async def test_actions_are_recorded_under_the_name_of_who_did_them(
    browser: Browser, pg_store: PostgresStore, rabbit: RabbitMQBroker
) -> None:
    settings = HttpSettings(port=0, token=TOKEN, tokens=f"alice:{ALICE}", user_header="X-Forwarded-User")
    async with serving(pg_store, rabbit, settings) as site:
        alices, proxied = await refunds_waiting(site, 2)
        # Alice with her own token.
        page = await open_page(browser, f"{site.url}/#token={ALICE}")
        await page.goto(f"{site.url}/#/runs/{alices.id}")
        await page.get_by_test_id("signal-data").fill(orjson.dumps({"ok": True}).decode())
        await page.get_by_test_id("action-signal").click()
        await expect(page.get_by_test_id("timeline")).to_contain_text("by dashboard:alice", timeout=20_000)
        # Carol through the authenticating proxy, which holds the shared token and names her.
        page = await open_page(browser, f"{site.url}/#token={TOKEN}", headers={"X-Forwarded-User": "carol"})
        await page.goto(f"{site.url}/#/runs/{proxied.id}")
        page.on("dialog", lambda dialog: dialog.accept())
        await page.get_by_test_id("action-cancel").click()
        await expect(page.get_by_test_id("run-status")).to_have_text("cancelled", timeout=20_000)
        await expect(page.get_by_test_id("timeline")).to_contain_text("by dashboard:carol")

        actors = {
            run.id: [e.actor for e in await site.store.history(run.id) if e.actor]
            for run in (alices, proxied)
        }
        assert actors == {alices.id: ["dashboard:alice"], proxied.id: ["dashboard:carol"]}
