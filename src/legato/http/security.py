"""Who may call: loopback by default, a bearer token for everything else.

- Bound to a loopback address, reads need no token, but the ``Host`` header
  must name the loopback too, so a web page elsewhere cannot read the API
  through DNS rebinding.
- Bound to any other address, the server refuses to start without a token
  (``LEGATO_HTTP_TOKEN``, or named tokens), refuses tokens shorter than
  ``MIN_TOKEN_LENGTH``, and every call needs one, except the health probes.
- Actions (every POST) need a token, always.
- Signed paths (webhooks) need no token: their signature is the credential,
  checked by their handler (http/webhooks.py).

Tokens: the shared ``LEGATO_HTTP_TOKEN`` acts as nobody in particular; named
tokens (``LEGATO_HTTP_TOKENS="alice:...,bob:..."`` or a file of ``NAME:TOKEN``
lines) name who acts. Where an authenticating proxy sits in front, the header
it sets (``LEGATO_HTTP_USER_HEADER``) names the user, but only when that
header is configured and only on a call that carries a valid token (the
proxy's), so a caller without a token cannot claim to be anyone.

The token travels as ``Authorization: Bearer ...``, never in a cookie, so a
page on another site cannot make the browser send it (no CSRF).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from legato.config import HttpSettings
from legato.errors import ConfigurationError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
MIN_TOKEN_LENGTH = 16
USER = web.RequestKey("legato.user", str)
"""The authenticated user's name, when a named token or a trusted proxy gave one."""

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
_NAME = re.compile(r"[\w.@+-]{1,64}")
_NOT_NAME = re.compile(r"[^\w.@+-]")
FRAME_POLICY = "frame-ancestors 'none'"


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Credentials:
    """Every accepted token and whose it is (None: the shared token)."""

    tokens: tuple[tuple[str | None, str], ...] = ()
    user_header: str | None = None

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def owner(self, given: str | None) -> tuple[bool, str | None]:
        """(valid, name): compares with every token, in constant time for each."""
        if given is None:
            return False, None
        found: tuple[bool, str | None] = (False, None)
        for name, token in self.tokens:
            if hmac.compare_digest(given.encode(), token.encode()):
                found = (True, name)
        return found


def credentials(settings: HttpSettings) -> Credentials:
    """The tokens of the settings; a malformed list or file is a ConfigurationError naming it."""
    tokens: list[tuple[str | None, str]] = []
    if settings.token:
        tokens.append((None, settings.token))
    if settings.tokens:
        tokens.extend(_named(settings.tokens.split(","), "LEGATO_HTTP_TOKENS"))
    if settings.tokens_file:
        path = Path(settings.tokens_file)
        try:
            lines = path.read_text("utf-8").splitlines()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the tokens file {path}: {exc.strerror or exc}") from None
        lines = [line.split("#", 1)[0] for line in lines]
        tokens.extend(_named(lines, f"the tokens file {path}"))
    seen: dict[str, str | None] = {}
    for name, token in tokens:
        if token in seen:
            raise ConfigurationError(
                f"two users have the same token ({seen[token]} and {name}): give each their own"
            )
        seen[token] = name
    header = settings.user_header.strip() if settings.user_header else None
    return Credentials(tuple(tokens), header or None)


def _named(entries: list[str], where: str) -> list[tuple[str | None, str]]:
    found: list[tuple[str | None, str]] = []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        name, colon, token = entry.partition(":")
        name, token = name.strip(), token.strip()
        if not colon or not token:
            raise ConfigurationError(f"{where}: {name!r} has no token; write NAME:TOKEN")
        if not _NAME.fullmatch(name):
            raise ConfigurationError(
                f"{where}: {name!r} is not a user name (letters, digits and . @ + - _, at most 64)"
            )
        found.append((name, token))
    return found


def check_binding(settings: HttpSettings) -> None:
    """Refuse to listen beyond loopback without a token, or with a short one."""
    known = credentials(settings)
    if is_loopback(settings.host):
        return
    if not known:
        raise ConfigurationError(
            f"binding the HTTP server to {settings.host} exposes it beyond this machine: "
            "set a token in LEGATO_HTTP_TOKEN (every call must then send it), or bind to 127.0.0.1"
        )
    for name, token in known.tokens:
        if len(token) < MIN_TOKEN_LENGTH:
            whose = f"the token of {name}" if name else "LEGATO_HTTP_TOKEN"
            raise ConfigurationError(
                f"{whose} has {len(token)} characters; binding to {settings.host} needs tokens of at "
                f"least {MIN_TOKEN_LENGTH} (python -c 'import secrets; print(secrets.token_urlsafe(24))')"
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


def guard(settings: HttpSettings, public: Collection[str] = (), signed: tuple[str, ...] = ()) -> Middleware:
    """An aiohttp middleware enforcing the rules above; ``public`` paths (the
    page and its assets) need no token, the probes never do, and paths under a
    ``signed`` prefix are left to their handler's signature check. A valid
    token's user is kept in ``request[USER]``."""
    loopback = is_loopback(settings.host)
    open_paths = OPEN_PATHS | frozenset(public)
    known = credentials(settings)

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if loopback and not is_loopback(_host_name(request.host)):
            return _refuse(403, f"Host {request.host!r} is not this loopback server (DNS rebinding?)")
        path = request.path
        if signed and path.startswith(signed):
            return await handler(request)
        valid, name = known.owner(bearer(request))
        user = _user(request, known, name) if valid else None
        if user:
            request[USER] = user
        action = request.method not in ("GET", "HEAD", "OPTIONS")
        if action:
            if not known:
                return _refuse(403, "actions are disabled: start the server with LEGATO_HTTP_TOKEN set")
            if not valid:
                return _refuse(401, "this action needs the token (Authorization: Bearer ...)")
        elif path not in open_paths and not loopback and not valid:
            return _refuse(401, "this server needs the token (Authorization: Bearer ...)")
        return await handler(request)

    return check


def _user(request: web.Request, known: Credentials, name: str | None) -> str | None:
    """The proxy's user header when configured and present, else the token's name."""
    if known.user_header:
        claimed = _NOT_NAME.sub("", request.headers.get(known.user_header, "").strip())[:64]
        if claimed:
            return claimed
    return name


def harden(app: web.Application, policy: str = FRAME_POLICY) -> None:
    """Headers on every response, errors included: no MIME sniffing, never inside a frame."""

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("Referrer-Policy", "no-referrer")

    app.on_response_prepare.append(add)


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
