"""Who may call the HTTP servers: loopback, tokens, actions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from legato.config import HttpSettings
from legato.errors import ConfigurationError
from legato.http.security import USER, check_binding, credentials, guard, harden, is_loopback

Server = Callable[[HttpSettings], AsyncIterator[str]]


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[HttpSettings], web.AppRunner]]:
    runners: list[web.AppRunner] = []

    def build(settings: HttpSettings) -> web.AppRunner:
        app = web.Application(middlewares=[guard(settings, public={"/"})])
        for path in ("/", "/api/runs", "/healthz", "/readyz"):
            app.router.add_get(path, ok)
        app.router.add_post("/api/runs/x/retry", ok)
        runner = web.AppRunner(app)
        runners.append(runner)
        return runner

    yield build
    for runner in runners:
        await runner.cleanup()


async def start(runner: web.AppRunner) -> str:
    # The guard judges by the settings; the test server itself listens on loopback only.
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return f"http://127.0.0.1:{runner.addresses[0][1]}"


async def call(method: str, url: str, token: str | None = None, host: str | None = None) -> int:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if host is not None:
        headers["Host"] = host
    async with aiohttp.ClientSession() as session, session.request(method, url, headers=headers) as response:
        return response.status


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("example.org", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


LONG = "s3cret-s3cret-s3cret"


def test_binding_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ConfigurationError, match="LEGATO_HTTP_TOKEN"):
        check_binding(HttpSettings(host="0.0.0.0"))
    check_binding(HttpSettings(host="0.0.0.0", token=LONG))
    check_binding(HttpSettings(host="0.0.0.0", tokens=f"alice:{LONG}"))
    check_binding(HttpSettings(host="127.0.0.1"))


def test_binding_beyond_loopback_refuses_short_tokens() -> None:
    with pytest.raises(ConfigurationError, match=r"LEGATO_HTTP_TOKEN has 6 characters; .* at least 16"):
        check_binding(HttpSettings(host="0.0.0.0", token="s3cret"))
    with pytest.raises(ConfigurationError, match="the token of bob has 5 characters"):
        check_binding(HttpSettings(host="10.1.2.3", tokens=f"alice:{LONG},bob:short"))
    # On loopback a short token is the operator's own business.
    check_binding(HttpSettings(host="127.0.0.1", token="s3cret"))


def test_named_tokens_from_the_variable_and_a_file(tmp_path: Path) -> None:
    listed = tmp_path / "tokens"
    listed.write_text(f"# who may act\ncarol:{LONG}-c\n\ndave:{LONG}-d  # on call\n")
    found = credentials(
        HttpSettings(token=LONG, tokens=f"alice:{LONG}-a, bob:{LONG}-b", tokens_file=str(listed))
    )
    assert [name for name, _ in found.tokens] == [None, "alice", "bob", "carol", "dave"]
    assert found.owner(f"{LONG}-d") == (True, "dave")
    assert found.owner(LONG) == (True, None)
    assert found.owner("nope") == (False, None)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ("alice", "'alice' has no token; write NAME:TOKEN"),
        ("alice:", "'alice' has no token"),
        ("al ice:tok", "'al ice' is not a user name"),
        (":tok", "'' is not a user name"),
        ("alice:same,bob:same", "two users have the same token (alice and bob)"),
    ],
)
def test_malformed_named_tokens_are_refused_clearly(tokens: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        credentials(HttpSettings(tokens=tokens))


def test_a_missing_tokens_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot read the tokens file .*absent"):
        credentials(HttpSettings(tokens_file=str(tmp_path / "absent")))


async def whoami(request: web.Request) -> web.Response:
    return web.json_response({"user": request.get(USER)})


@pytest.mark.parametrize(
    ("header_setting", "headers", "status", "user"),
    [
        (None, {"Authorization": f"Bearer {LONG}-a"}, 200, "alice"),
        (None, {"Authorization": f"Bearer {LONG}"}, 200, None),
        # The proxy's header is ignored unless configured...
        (None, {"Authorization": f"Bearer {LONG}", "X-Forwarded-User": "mallory"}, 200, None),
        # ...read when configured, from a caller holding a token (the proxy)...
        ("X-Forwarded-User", {"Authorization": f"Bearer {LONG}", "X-Forwarded-User": "carol"}, 200, "carol"),
        (
            "X-Forwarded-User",
            {"Authorization": f"Bearer {LONG}", "X-Forwarded-User": "c<a>rol!"},
            200,
            "carol",
        ),
        ("X-Forwarded-User", {"Authorization": f"Bearer {LONG}-a"}, 200, "alice"),
        # ...and never makes a call without a token pass.
        ("X-Forwarded-User", {"X-Forwarded-User": "carol"}, 401, None),
    ],
)
async def test_who_acts_is_the_token_or_the_trusted_proxy_header(
    header_setting: str | None, headers: dict[str, str], status: int, user: str | None
) -> None:
    settings = HttpSettings(token=LONG, tokens=f"alice:{LONG}-a", user_header=header_setting)
    app = web.Application(middlewares=[guard(settings)])
    app.router.add_post("/api/act", whoami)
    runner = web.AppRunner(app)
    try:
        base = await start(runner)
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{base}/api/act", headers=headers) as answer,
        ):
            assert answer.status == status
            if status == 200:
                assert (await answer.json())["user"] == user
    finally:
        await runner.cleanup()


async def test_every_answer_says_no_sniffing_and_no_framing() -> None:
    app = web.Application(middlewares=[guard(HttpSettings(token=LONG))])
    harden(app)
    app.router.add_get("/api/runs", ok)
    runner = web.AppRunner(app)
    try:
        base = await start(runner)
        async with aiohttp.ClientSession() as session:
            for path, method, status in [
                ("/api/runs", "GET", 200),
                ("/nowhere", "GET", 404),
                ("/api/runs", "POST", 401),
            ]:
                async with session.request(method, f"{base}{path}") as answer:
                    assert answer.status == status
                    assert answer.headers["X-Content-Type-Options"] == "nosniff"
                    assert answer.headers["X-Frame-Options"] == "DENY"
                    assert answer.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    finally:
        await runner.cleanup()


async def test_on_loopback_reads_are_open_and_actions_need_the_token(
    serve: Callable[[HttpSettings], web.AppRunner],
) -> None:
    base = await start(serve(HttpSettings(token="s3cret")))
    assert await call("GET", f"{base}/api/runs") == 200
    assert await call("POST", f"{base}/api/runs/x/retry") == 401
    assert await call("POST", f"{base}/api/runs/x/retry", token="wrong") == 401
    assert await call("POST", f"{base}/api/runs/x/retry", token="s3cret") == 200
    # A page elsewhere that rebinds its name to 127.0.0.1 cannot read the API.
    assert await call("GET", f"{base}/api/runs", host="evil.example:8080") == 403
    assert await call("GET", f"{base}/api/runs", host="localhost:1234") == 200


async def test_without_a_token_actions_are_off(serve: Callable[[HttpSettings], web.AppRunner]) -> None:
    base = await start(serve(HttpSettings()))
    assert await call("POST", f"{base}/api/runs/x/retry") == 403
    assert await call("POST", f"{base}/api/runs/x/retry", token="anything") == 403


async def test_beyond_loopback_every_call_needs_the_token_but_probes(
    serve: Callable[[HttpSettings], web.AppRunner],
) -> None:
    base = await start(serve(HttpSettings(host="0.0.0.0", token=LONG)))
    assert await call("GET", f"{base}/api/runs") == 401
    assert await call("GET", f"{base}/api/runs", token=LONG) == 200
    assert await call("GET", f"{base}/healthz") == 200
    assert await call("GET", f"{base}/readyz") == 200
    assert await call("GET", f"{base}/") == 200
    assert await call("POST", f"{base}/api/runs/x/retry", token=LONG) == 200


async def test_signed_paths_skip_the_token_but_not_the_host_check() -> None:
    """Webhooks carry a signature, not the token; their handler checks it."""
    app = web.Application(middlewares=[guard(HttpSettings(token="s3cret"), signed=("/webhooks/",))])
    app.router.add_post("/webhooks/{source}", ok)
    app.router.add_post("/events/{name}", ok)
    runner = web.AppRunner(app)
    try:
        base = await start(runner)
        assert await call("POST", f"{base}/webhooks/github") == 200
        assert await call("POST", f"{base}/events/x") == 401
        assert await call("POST", f"{base}/webhooks/github", host="evil.example") == 403
    finally:
        await runner.cleanup()


async def test_an_outage_is_a_503_never_a_500() -> None:
    from legato.errors import StoreError
    from legato.http.requests import errors

    async def down(request: web.Request) -> web.Response:
        raise StoreError("connection refused")

    app = web.Application(middlewares=[errors])
    app.router.add_post("/events/{name}", down)
    runner = web.AppRunner(app)
    try:
        base = await start(runner)
        async with aiohttp.ClientSession() as session, session.post(f"{base}/events/x") as answer:
            assert answer.status == 503
            assert answer.headers["Retry-After"] == "1"
            assert "not accepted, try again: connection refused" in (await answer.json())["error"]
    finally:
        await runner.cleanup()
