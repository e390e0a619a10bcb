"""The database and broker URLs, checked when the settings are read.

A URL the drivers cannot use (an unknown scheme, a port that is no number, a
host that is no host) is one clear line naming the setting, never a driver's
traceback, and never with its password (:mod:`legato.redact`).
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from legato.errors import ConfigurationError
from legato.redact import redact

DATABASE_SCHEMES = ("postgresql", "postgres", "sqlite")
BROKER_SCHEMES = ("amqp", "amqps", "memory")


def check_database_url(url: str) -> str:
    """``url`` if legato can connect with it; else a clear error."""
    parts = _split(url, "LEGATO_DATABASE_URL", DATABASE_SCHEMES)
    if parts.scheme != "sqlite":
        # Postgres takes several hosts for failover: host1:5432,host2:5433.
        for host in parts.netloc.rpartition("@")[2].split(","):
            _check_host(urlsplit(f"//{host}"), url, "LEGATO_DATABASE_URL")
    return url


def check_broker_url(url: str) -> str:
    """``url`` if legato can connect with it; else a clear error."""
    parts = _split(url, "LEGATO_BROKER_URL", BROKER_SCHEMES)
    if parts.scheme != "memory":
        _check_host(parts, url, "LEGATO_BROKER_URL")
    return url


def _split(url: str, variable: str, schemes: tuple[str, ...]) -> SplitResult:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _bad(url, variable, str(exc)) from None
    if parts.scheme not in schemes:
        shown = parts.scheme or "none"
        raise _bad(url, variable, f"the scheme {shown!r} is not supported; use one of {', '.join(schemes)}")
    return parts


def _check_host(parts: SplitResult, url: str, variable: str) -> None:
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError as exc:
        raise _bad(url, variable, f"the port is not a number from 0 to 65535 ({exc})") from None
    host = parts.hostname or ""
    if any(c.isspace() or c in "/\\?#[]@" for c in host):
        raise _bad(url, variable, f"{host!r} is not a host name")


def _bad(url: str, variable: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"{variable} {redact(url)} is not a usable URL: {problem}")
