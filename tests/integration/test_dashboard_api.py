"""The dashboard's JSON API against bad input, on real Postgres: every malformed
query value is a 400 that names it (never a 500), an unknown id a 404, and every
response carries the anti-sniffing and anti-framing headers."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import aiohttp
import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from legato.config import HttpSettings
from legato.http.dashboard.serve import serve_dashboard
from legato.http.dashboard.service import Dashboard
from legato.store.base import PoisonMessage
from legato.store.insights import insights_for
from legato.store.postgres import PostgresStore
from tests.apps import board

TOKEN = "api-test-token-0123456789"


@contextlib.asynccontextmanager
async def dashboard(pg_store: PostgresStore, http: HttpSettings | None = None) -> AsyncIterator[str]:
    insights = insights_for(pg_store)
    await insights.open()
    try:
        async with anyio.create_task_group() as group:
            board_ = Dashboard(pg_store, insights, board.app, None, cache_seconds=0)
            chosen = http or HttpSettings(port=0, token=TOKEN)
            _, port = await group.start(partial(serve_dashboard, board_, chosen, interval=0.2))
            yield f"http://127.0.0.1:{port}"
            group.cancel_scope.cancel()
    finally:
        await insights.close()


async def get(url: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.request(method, url, headers=headers) as response:
        text = await response.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = {"text": text}
        return response.status, body if isinstance(body, dict) else {"list": body}, dict(response.headers)


BAD = [
    ("/api/runs?before=nan", "before"),
    ("/api/runs?before=inf", "before"),
    ("/api/runs?before=-inf", "before"),
    ("/api/runs?before=1e400", "before"),
    ("/api/runs?before=1e300", "before"),
    ("/api/runs?before=-5", "before"),
    ("/api/runs?before=yesterday", "before"),
    ("/api/runs?limit=-1", "limit"),
    ("/api/runs?limit=0", "limit"),
    ("/api/runs?limit=1e3", "limit"),
    ("/api/runs?limit=99999999999999999999999", "limit"),
    ("/api/runs?status=exploded", "status"),
    ("/api/runs?workflow=a%00b", "workflow"),
    ("/api/runs?status=%00", "status"),
    ("/api/dead-letters?status=%00", "status"),
    ("/api/runs/a%00b", "run id"),
    ("/api/runs?where=customer..id%3D1", "has an empty key"),
    ("/api/runs?where=customer.id", "is not PATH=VALUE"),
    ("/api/runs?where=customer.id%3D4%002", "where"),
    ("/api/runs?key=k%00", "key"),
    ("/api/runs?since=soon", "neither an ISO time"),
    ("/api/runs?until=2026-13-45", "neither an ISO time"),
    ("/api/runs?since=" + "9" * 400 + "h", "before 1970"),
    ("/api/overview?range=1y", "range"),
    ("/api/dead-letters?status=burnt", "status"),
    ("/api/dead-letters?offset=-3", "offset"),
    ("/api/dead-letters?offset=99999999999999999999999", "offset"),
    ("/api/dead-letters?limit=100000", "limit"),
]


async def test_bad_query_values_are_a_400_naming_them(pg_store: PostgresStore) -> None:
    async with dashboard(pg_store) as url:
        for path, names in BAD:
            status, body, _ = await get(url + path)
            assert status == 400, (path, body)
            assert names in str(body["error"]), path


async def test_unknown_and_huge_ids_are_a_404(pg_store: PostgresStore) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with dashboard(pg_store) as url:
        for path, method in [
            ("/api/dead-letters/424242", "GET"),
            ("/api/dead-letters/424242/replay", "POST"),
            ("/api/dead-letters/99999999999999999999999999", "GET"),
            ("/api/dead-letters/99999999999999999999999999/replay", "POST"),
            ("/api/runs/not-a-run", "GET"),
            ("/api/runs/00000000-0000-0000-0000-000000000000", "GET"),
            ("/api/runs/" + "9" * 300, "GET"),
            ("/api/runs/00000000-0000-0000-0000-000000000000/cancel", "POST"),
            ("/api/runs/not-a-run/retry", "POST"),
            ("/api/schedules/nope/pause", "POST"),
            ("/api/schedules/nope/trigger", "POST"),
            ("/api/schedules/" + "x" * 900 + "/pause", "POST"),
        ]:
            status, body, _ = await get(url + path, method, **auth)
            assert status == 404, (path, body)
            assert "error" in body


async def test_every_response_carries_the_protective_headers(pg_store: PostgresStore) -> None:
    async with dashboard(pg_store) as url:
        for path, method, expected in [
            ("/", "GET", 200),
            ("/static/app.js", "GET", 200),
            ("/static/dagre.min.js", "GET", 200),
            ("/static/nothing.js", "GET", 404),
            ("/api/overview", "GET", 200),
            ("/api/runs?limit=-1", "GET", 400),
            ("/api/runs/x/cancel", "POST", 401),
            ("/no/such/page", "GET", 404),
        ]:
            status, _, headers = await get(url + path, method)
            assert status == expected, path
            assert headers["X-Content-Type-Options"] == "nosniff", path
            assert headers["X-Frame-Options"] == "DENY", path
            assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path


async def test_dead_letters_come_in_pages_with_the_total(pg_store: PostgresStore) -> None:
    for i in range(7):
        await pg_store.record_poison(
            PoisonMessage("not json", "q", "k", b"{", f"m-{i}", {}, f"fp-{i}"), 1000.0 + i
        )
    async with dashboard(pg_store) as url:
        _, first, _ = await get(url + "/api/dead-letters?limit=3")
        _, third, _ = await get(url + "/api/dead-letters?limit=3&offset=6")
    assert first["total"] == third["total"] == 7
    ids = [d["id"] for d in first["letters"]]
    assert len(ids) == 3
    assert ids == sorted(ids, reverse=True)
    [oldest] = third["letters"]
    assert oldest["id"] == min(ids) - 4


QUERY_TEXT = st.one_of(
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "1e400",
            "-1",
            "0",
            "1",
            "1.5",
            "1e18",
            "9" * 30,
            "",
            "x",
            "open",
            "all",
            "a\x00b",
        ]
    ),
    st.text(max_size=20),
)
PATHS = ["/api/runs", "/api/dead-letters", "/api/overview", "/api/schedules", "/api/workflows"]
PARAMS = ["before", "limit", "status", "workflow", "offset", "range"]


async def test_no_query_value_makes_the_dashboard_fail(pg_store: PostgresStore) -> None:
    """Whatever the query, the answer is a page or a 400 with a message; never a 500."""
    async with dashboard(pg_store) as url:
        await anyio.to_thread.run_sync(partial(fuzz, url))


def fuzz(url: str) -> None:
    """Hypothesis in a thread, calling the server that runs in the test's event loop."""

    @settings(max_examples=150, deadline=None, database=None)
    @given(
        path=st.sampled_from(PATHS), params=st.dictionaries(st.sampled_from(PARAMS), QUERY_TEXT, max_size=4)
    )
    def check(path: str, params: dict[str, str]) -> None:
        address = f"{url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(address, timeout=10) as response:
                status, body = response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            status, body = exc.code, json.loads(exc.read())
        assert status in (200, 400), (path, params, status, body)
        if status == 400:
            assert body["error"]

    check()
