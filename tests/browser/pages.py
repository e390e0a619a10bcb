"""Opening dashboard pages in Chromium, and keeping screenshots of them."""

from __future__ import annotations

import os

from playwright.async_api import Browser, Page

from tests.conftest import ROOT

CHROMIUM = os.environ.get("LEGATO_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"


async def open_page(browser: Browser, url: str) -> Page:
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await page.goto(url)
    return page


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
