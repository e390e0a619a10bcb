"""Keeping secrets out of messages and logs."""

from __future__ import annotations


def redact(url: str) -> str:
    """A URL without its password: secrets never go to logs."""
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    masked = f"{user}:***" if ":" in credentials else user
    return f"{scheme}://{masked}@{host}" if scheme else f"{masked}@{host}"
