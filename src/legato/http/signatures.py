"""Webhook signatures: HMAC-SHA256 over the raw body with a shared secret.

Two schemes, the ones providers use most:

- GitHub: ``X-Hub-Signature-256: sha256=<hex>``, the HMAC of the body.
- Stripe: ``Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]``, the HMAC
  of ``"<t>.<body>"``. The timestamp is signed, so a delivery captured and
  replayed later is refused once it is older than the tolerance.

Every comparison is constant-time (``hmac.compare_digest``). Nothing here
logs, and no error message quotes the secret or a signature.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from enum import StrEnum
from typing import assert_never


class Scheme(StrEnum):
    GITHUB = "github"
    STRIPE = "stripe"


class Refusal(StrEnum):
    """Why a delivery's signature was refused (the label of the refusals counter)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    MISMATCH = "mismatch"
    EXPIRED = "expired"


class SignatureRefused(Exception):
    def __init__(self, reason: Refusal, message: str) -> None:
        self.reason = reason
        super().__init__(message)


GITHUB_HEADER = "X-Hub-Signature-256"
STRIPE_HEADER = "Stripe-Signature"


def hmac_hex(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def verify(
    scheme: Scheme,
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float,
) -> None:
    """Return when the delivery is signed with ``secret``; raise :class:`SignatureRefused` otherwise.

    ``headers`` must look names up without regard to case (aiohttp's do).
    """
    match scheme:
        case Scheme.GITHUB:
            _github(secret, headers.get(GITHUB_HEADER), body)
        case Scheme.STRIPE:
            _stripe(secret, headers.get(STRIPE_HEADER), body, now, tolerance)
        case _:
            assert_never(scheme)


def _github(secret: bytes, header: str | None, body: bytes) -> None:
    if not header:
        raise SignatureRefused(Refusal.MISSING, f"the {GITHUB_HEADER} header is missing")
    algorithm, _, given = header.strip().partition("=")
    if algorithm != "sha256" or not given:
        raise SignatureRefused(Refusal.MALFORMED, f"{GITHUB_HEADER} must be sha256=<hex digest>")
    if not hmac.compare_digest(hmac_hex(secret, body).encode(), given.lower().encode()):
        raise SignatureRefused(Refusal.MISMATCH, f"{GITHUB_HEADER} does not match the body")


def _stripe(secret: bytes, header: str | None, body: bytes, now: float, tolerance: float) -> None:
    if not header:
        raise SignatureRefused(Refusal.MISSING, f"the {STRIPE_HEADER} header is missing")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value.lower())
    if timestamp is None or not signatures:
        raise SignatureRefused(
            Refusal.MALFORMED, f"{STRIPE_HEADER} must hold t=<timestamp> and v1=<hex digest>"
        )
    expected = hmac_hex(secret, str(timestamp).encode() + b"." + body).encode()
    # Every candidate is compared, so the time taken does not tell which one matched.
    matched = [hmac.compare_digest(expected, given.encode()) for given in signatures]
    if not any(matched):
        raise SignatureRefused(Refusal.MISMATCH, f"{STRIPE_HEADER} does not match the body")
    if abs(now - timestamp) > tolerance:
        raise SignatureRefused(
            Refusal.EXPIRED,
            f"{STRIPE_HEADER} was signed {now - timestamp:.0f}s from now, beyond the {tolerance:g}s tolerance",
        )


def github_signature(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub would send (for tests and tools)."""
    return "sha256=" + hmac_hex(secret, body)


def stripe_signature(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``Stripe-Signature`` value Stripe would send (for tests and tools)."""
    return f"t={timestamp},v1={hmac_hex(secret, str(timestamp).encode() + b'.' + body)}"
