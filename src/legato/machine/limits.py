"""Flow control as pure values: limit declarations and token-bucket arithmetic.

A :class:`RateLimit` is a token bucket. It refills at ``rate / per`` tokens a
second up to ``burst`` tokens, and a step attempt that uses it takes one
token just before its handler starts. A :class:`ConcurrencyLimit` bounds the
step attempts of its bucket that are in flight at once.

Limits are declared once, by name, on the :class:`~legato.app.App`, and task
states refer to them (``Task(charge, rate_limit="payments",
rate_key="customer.id")``). A key splits a limit into one bucket per value
found at that path of the run's data: ``payments:c-42``.

``scope`` says where a bucket lives: ``"process"`` -- in every worker process
on its own; ``"global"`` -- shared by all workers through the store.

Nothing here reads a clock: every function takes ``now``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, TypeAlias

from legato.machine.values import Data, lookup

Scope: TypeAlias = Literal["process", "global"]
SCOPES: tuple[Scope, ...] = ("process", "global")

EPSILON = 1e-9
"""Float slack: a bucket at 0.9999999999 tokens has its token."""

MAX_KEY_LENGTH = 120
"""Key values longer than this are hashed, so bucket names stay short."""


def _name_problems(name: object) -> list[str]:
    if not isinstance(name, str) or not name or name != name.strip() or " " in name:
        return [f"a limit needs a name without spaces, got {name!r}"]
    if ":" in name:
        return [f"limit name {name!r} must not contain ':' (it separates the name from a key)"]
    return []


def _scope_problems(scope: object) -> list[str]:
    if scope not in SCOPES:
        return [f"scope must be 'process' or 'global', got {scope!r}"]
    return []


@dataclass(frozen=True)
class LeasePlan:
    """How a global bucket's ``burst`` is shared between the store and the workers.

    Workers reserve tokens from the store ``batch`` at a time and may keep them
    for ``hold`` seconds after they become valid; tokens not used by then are
    dropped. The store's bucket holds ``capacity`` tokens, so that what the
    store hands out plus what workers may still hold never exceeds ``burst``:
    in any window of T seconds at most ``rate * T + capacity + rate * hold``
    steps start, and ``capacity + rate * hold`` is ``burst`` (``burst >= 2``).
    """

    capacity: int
    batch: int
    hold: float


@dataclass(frozen=True)
class RateLimit:
    """At most ``rate`` step starts per ``per`` seconds, with bursts up to ``burst``.

    ``burst`` is the bucket's size: how many steps may start at once after a
    quiet spell (default: half a second's worth, at least 1). ``batch`` is how
    many tokens a worker reserves from the store at a time for a global limit
    (default: a fifth of a second's worth, at most half the burst).
    """

    name: str
    rate: float
    per: float = 1.0
    burst: int | None = None
    scope: Scope = "global"
    batch: int | None = None

    @property
    def per_second(self) -> float:
        return self.rate / self.per

    @property
    def capacity(self) -> int:
        """The bucket's size in tokens."""
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.per_second / 2))

    def problems(self) -> list[str]:
        """Why this declaration is illegal; empty when it is fine."""
        found = _name_problems(self.name) + _scope_problems(self.scope)
        if not isinstance(self.rate, int | float) or not self.rate > 0 or math.isinf(self.rate):
            found.append(f"rate must be a positive number, got {self.rate!r}")
        if not isinstance(self.per, int | float) or not self.per > 0 or math.isinf(self.per):
            found.append(f"per must be a positive number of seconds, got {self.per!r}")
        if self.burst is not None and (not isinstance(self.burst, int) or self.burst < 1):
            found.append(f"burst must be an integer >= 1, got {self.burst!r}")
        if self.batch is not None and (not isinstance(self.batch, int) or self.batch < 1):
            found.append(f"batch must be an integer >= 1, got {self.batch!r}")
        return found

    def lease_plan(self) -> LeasePlan:
        """How a global bucket of this limit is shared (see :class:`LeasePlan`)."""
        burst = self.capacity
        held = max(1, burst // 2)
        capacity = max(1, burst - held)
        default_batch = max(1, math.ceil(self.per_second / 5))
        batch = max(1, min(capacity, self.batch or default_batch))
        return LeasePlan(capacity=capacity, batch=batch, hold=held / self.per_second)


@dataclass(frozen=True)
class ConcurrencyLimit:
    """At most ``limit`` step attempts of one bucket in flight at once.

    With ``scope="global"`` the slots are leases in the store, renewed while
    the step runs; a worker that dies holding one gives it back when the
    lease (``lease`` seconds) runs out.
    """

    name: str
    limit: int
    scope: Scope = "global"
    lease: float = 30.0

    def problems(self) -> list[str]:
        found = _name_problems(self.name) + _scope_problems(self.scope)
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            found.append(f"limit must be an integer >= 1, got {self.limit!r}")
        if not isinstance(self.lease, int | float) or not self.lease > 0:
            found.append(f"lease must be a positive number of seconds, got {self.lease!r}")
        return found


Limit: TypeAlias = RateLimit | ConcurrencyLimit


def kind_of_limit(limit: Limit) -> str:
    return "rate limit" if isinstance(limit, RateLimit) else "concurrency limit"


LimitKind: TypeAlias = Literal["rate", "concurrency"]


@dataclass(frozen=True)
class LimitUse:
    """A task state's use of a declared limit, with the data path of its key."""

    name: str
    key: str | None
    kind: LimitKind

    def matches(self, limit: Limit) -> bool:
        return isinstance(limit, RateLimit if self.kind == "rate" else ConcurrencyLimit)


def use_problems(kind: LimitKind, limit: object, key: object) -> Iterator[str]:
    """What is wrong with a task's ``{kind}_limit`` and ``{kind}_key`` fields, the first to report first."""
    if limit is not None and (not isinstance(limit, str) or not limit):
        yield f"{kind}_limit must be the name of a declared limit, got {limit!r}"
    if key is not None:
        if limit is None:
            yield f"{kind}_key is set but there is no {kind}_limit"
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            yield f"{kind}_key must be a data path like 'customer.id', got {key!r}"


def bucket_name(use: LimitUse, data: Data) -> str:
    """The bucket a step falls into: the limit's name, plus the key's value if any.

    A key that is missing from the data (or null) falls back to the limit's
    shared bucket, so a step is never refused for want of a key.
    """
    if use.key is None:
        return use.name
    found, value = lookup(data, use.key)
    if not found or value is None:
        return use.name
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_KEY_LENGTH:
        text = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return f"{use.name}:{text}"


# -- token buckets ------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """A token bucket's state: ``tokens`` as of time ``at``.

    ``tokens`` may be negative after :func:`reserve`: the debt of tokens
    promised ahead of time, paid off as the bucket refills.
    """

    tokens: float
    at: float

    @classmethod
    def full(cls, capacity: float, now: float) -> Bucket:
        return cls(float(capacity), now)


def level(bucket: Bucket, rate: float, capacity: float, now: float) -> float:
    """Tokens in the bucket at ``now``. Time going backwards adds nothing."""
    elapsed = max(0.0, now - bucket.at)
    return min(float(capacity), bucket.tokens + elapsed * rate)


def refill(bucket: Bucket, rate: float, capacity: float, now: float) -> Bucket:
    return Bucket(level(bucket, rate, capacity, now), max(bucket.at, now))


def take(bucket: Bucket, rate: float, capacity: float, now: float, count: int = 1) -> Bucket | None:
    """Take ``count`` tokens now, or None when the bucket does not have them."""
    current = refill(bucket, rate, capacity, now)
    if current.tokens + EPSILON < count:
        return None
    return Bucket(current.tokens - count, current.at)


def give_back(bucket: Bucket, rate: float, capacity: float, now: float, count: int = 1) -> Bucket:
    """Return tokens taken for a step that did not start after all."""
    current = refill(bucket, rate, capacity, now)
    return Bucket(min(float(capacity), current.tokens + count), current.at)


def ready_at(bucket: Bucket, rate: float, capacity: float, now: float, count: int = 1) -> float:
    """The earliest time (>= ``now``) the bucket holds ``count`` tokens; inf if it never can."""
    if count > capacity + EPSILON:
        return math.inf
    current = refill(bucket, rate, capacity, now)
    missing = count - current.tokens
    if missing <= EPSILON:
        return current.at
    return current.at + missing / rate


def reserve(bucket: Bucket, rate: float, capacity: float, now: float, count: int) -> tuple[Bucket, float]:
    """Take ``count`` tokens at once, going into debt if need be.

    Returns the new state and the time the tokens are valid from: now, if the
    bucket had them, else when the refill has paid the debt off. Reservations
    are served in the order they are made, and the tokens valid within any
    window of T seconds never exceed ``rate * T + capacity`` (for
    ``count <= capacity``) -- the same bound as a bucket that makes every
    taker wait.
    """
    current = refill(bucket, rate, capacity, now)
    after = Bucket(current.tokens - count, current.at)
    if after.tokens >= -EPSILON:
        return after, current.at
    return after, current.at + (-after.tokens) / rate


def full_at(bucket: Bucket, rate: float, capacity: float) -> float:
    """When the bucket is full again if nobody takes from it: it can then be forgotten."""
    return bucket.at + max(0.0, capacity - bucket.tokens) / rate
