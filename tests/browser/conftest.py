"""The dashboard on a real worker, on the real servers, in Debian's headless Chromium."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.browser.pages import CHROMIUM
from tests.shared_servers import broker, namespace, pg_schema, pg_store, rabbit, shared_servers, store

__all__ = ["broker", "namespace", "pg_schema", "pg_store", "rabbit", "shared_servers", "store"]


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        found = await playwright.chromium.launch(
            executable_path=chromium,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield found
        await found.close()
