"""Who may call: loopback by default, a bearer token for everything else.

- Bound to a loopback address, reads need no token, but the ``Host`` header
  must name the loopback too, so a web page elsewhere cannot read the API
  through DNS rebinding.
- Bound to any other address, the server refuses to start without a token
  (``LEGATO_HTTP_TOKEN``), and every call needs it, except the health probes.
- Actions (every POST) need the token, always.
- Signed paths (webhooks) need no token: their signature is the credential,
  checked by their handler (http/webhooks.py).

The token travels as ``Authorization: Bearer ...``, never in a cookie, so a
page on another site cannot make the browser send it (no CSRF).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Collection

from aiohttp import web
from aiohttp.typedefs import Middleware

from legato.config import HttpSettings
from legato.errors import ConfigurationError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_binding(settings: HttpSettings) -> None:
    """Refuse to listen beyond loopback without a token."""
    if not is_loopback(settings.host) and not settings.token:
        raise ConfigurationError(
            f"binding the HTTP server to {settings.host} exposes it beyond this machine: "
            "set a token in LEGATO_HTTP_TOKEN (every call must then send it), or bind to 127.0.0.1"
        )


def _host_name(header: str) -> str:
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


def token_matches(request: web.Request, token: str | None) -> bool:
    given = bearer(request)
    return token is not None and given is not None and hmac.compare_digest(given.encode(), token.encode())


def guard(settings: HttpSettings, public: Collection[str] = (), signed: tuple[str, ...] = ()) -> Middleware:
    """An aiohttp middleware enforcing the rules above; ``public`` paths (the
    page and its assets) need no token, the probes never do, and paths under a
    ``signed`` prefix are left to their handler's signature check."""
    loopback = is_loopback(settings.host)
    open_paths = OPEN_PATHS | frozenset(public)

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if loopback and not is_loopback(_host_name(request.host)):
            return _refuse(403, f"Host {request.host!r} is not this loopback server (DNS rebinding?)")
        path = request.path
        if signed and path.startswith(signed):
            return await handler(request)
        action = request.method not in ("GET", "HEAD", "OPTIONS")
        if action:
            if not settings.token:
                return _refuse(403, "actions are disabled: start the server with LEGATO_HTTP_TOKEN set")
            if not token_matches(request, settings.token):
                return _refuse(401, "this action needs the token (Authorization: Bearer ...)")
        elif path not in open_paths and not loopback and not token_matches(request, settings.token):
            return _refuse(401, "this server needs the token (Authorization: Bearer ...)")
        return await handler(request)

    return check


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
