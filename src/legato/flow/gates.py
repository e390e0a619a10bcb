"""Gates: one per flow-control bucket, where steps pass or wait.

A gate answers two questions. :meth:`Gate.enter` -- may this step start now?
It is asked with a concurrency slot held, just before the handler runs, and
never waits: a step that may not pass is parked by the caller and holds
nothing. :meth:`Gate.ready` -- when may the first waiting step try again? The
gate's pump (in :mod:`legato.flow.admission`) asks it and wakes one waiter
at a time, in priority order. The waiters are tickets of the waiting room
(:mod:`legato.flow.waiting`), which owns them: a gate only orders them.

A woken waiter is *promised* the next token or slot: until it tries (or the
promise lapses after :data:`PROMISE_TTL`), newcomers do not overtake it and
the pump does not wake more waiters than the gate can let through.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from legato.clock import Clock
from legato.flow.stride import Stride
from legato.machine.limits import (
    EPSILON,
    Bucket,
    ConcurrencyLimit,
    RateLimit,
    give_back,
    level,
    ready_at,
    take,
)
from legato.store.ports import FlowStore

if TYPE_CHECKING:
    from legato.flow.waiting import Ticket

PROMISE_TTL = 10.0
"""Seconds a woken waiter keeps its precedence while it makes its way to a slot."""


class Signal:
    """Wakes whoever waits for a gate to change (a token taken, a slot freed)."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def wait(self, timeout: float) -> None:
        event = self._event
        with anyio.move_on_after(max(0.0, timeout)):
            await event.wait()


class Hold(ABC):
    """What a step holds from a gate while it runs."""

    @abstractmethod
    async def release(self) -> None:
        """The step is over, whatever its outcome."""

    @abstractmethod
    async def undo(self) -> None:
        """The step did not start after all (another gate refused it)."""


class Gate(ABC):
    def __init__(self, bucket: str, clock: Clock, weight_of: Callable[[str], int]) -> None:
        self.bucket = bucket
        self.clock = clock
        self.waiters: Stride[Ticket] = Stride(weight_of)
        self.changed = Signal()
        self.pumping = False
        self._promises: dict[Ticket, float] = {}

    @property
    @abstractmethod
    def name(self) -> str:
        """The limit's name."""

    def promise(self, ticket: Ticket, now: float) -> None:
        self._promises[ticket] = now + PROMISE_TTL

    def promised(self, now: float) -> int:
        for ticket, until in list(self._promises.items()):
            if until <= now or ticket.delivery.settled:
                del self._promises[ticket]
        return len(self._promises)

    async def enter(self, ticket: Ticket | None, now: float) -> Hold | None:
        """Let the step pass now, or return None (the caller parks it here).

        ``ticket`` is the step's if it waited before (it may have been promised
        a token or slot), None on its first try.
        """
        promised = ticket is not None and self._promises.pop(ticket, None) is not None
        if not promised and len(self.waiters):
            return None  # first come, first served: queue behind those already waiting
        hold = await self._pass(now, 0 if promised else self.promised(now))
        self.changed.notify()
        return hold

    @abstractmethod
    async def _pass(self, now: float, keep: int) -> Hold | None:
        """Take a token or slot if one is left beyond the ``keep`` promised to others."""

    @abstractmethod
    async def ready(self) -> None:
        """Return when the next waiter can probably pass."""

    def idle(self, now: float) -> bool:
        """Nothing waits or is held here: the gate can be forgotten."""
        return not self.pumping and not len(self.waiters) and not self.promised(now)


# -- rate limits ----------------------------------------------------------------


class _Token(Hold):
    def __init__(self, give: Callable[[], None]) -> None:
        self._give = give

    async def release(self) -> None:
        return None  # a token is spent when the step starts

    async def undo(self) -> None:
        self._give()


class ProcessRate(Gate):
    """A token bucket in this process."""

    def __init__(self, limit: RateLimit, bucket: str, clock: Clock, weight_of: Callable[[str], int]) -> None:
        super().__init__(bucket, clock, weight_of)
        self.limit = limit
        self.rate = limit.per_second
        self.capacity = limit.capacity
        self.state = Bucket.full(self.capacity, clock.now())

    @property
    def name(self) -> str:
        return self.limit.name

    async def _pass(self, now: float, keep: int) -> Hold | None:
        if level(self.state, self.rate, self.capacity, now) - keep + EPSILON < 1:
            return None
        taken = take(self.state, self.rate, self.capacity, now)
        assert taken is not None
        self.state = taken
        return _Token(self._give_back)

    def _give_back(self) -> None:
        self.state = give_back(self.state, self.rate, self.capacity, self.clock.now())

    async def ready(self) -> None:
        while True:
            now = self.clock.now()
            when = ready_at(self.state, self.rate, self.capacity, now, self.promised(now) + 1)
            if when <= now:
                return
            # Every token is promised (when = inf) or the next one is not there yet.
            await self.changed.wait(min(when - now, PROMISE_TTL))

    def idle(self, now: float) -> bool:
        full = level(self.state, self.rate, self.capacity, now) >= self.capacity - EPSILON
        return full and super().idle(now)


@dataclass
class Lease:
    """Tokens reserved from a global bucket, usable from ``valid_from`` until ``valid_until``."""

    tokens: int
    valid_from: float
    valid_until: float

    def usable(self, now: float) -> bool:
        return self.tokens > 0 and self.valid_from <= now < self.valid_until


class GlobalRate(Gate):
    """A token bucket in the store, shared by every worker.

    Tokens are reserved a batch at a time, only for steps that wait, and are
    dropped if not used within ``hold`` seconds of becoming valid: a dead
    worker loses at most one batch, and what workers hold never pushes the
    starts past ``rate * T + burst`` (see :class:`~legato.machine.limits.LeasePlan`).
    """

    def __init__(
        self,
        limit: RateLimit,
        bucket: str,
        clock: Clock,
        weight_of: Callable[[str], int],
        store: FlowStore,
    ) -> None:
        super().__init__(bucket, clock, weight_of)
        self.limit = limit
        self.plan = limit.lease_plan()
        self.store = store
        self.leases: list[Lease] = []

    @property
    def name(self) -> str:
        return self.limit.name

    def _live(self, now: float) -> list[Lease]:
        self.leases = [lease for lease in self.leases if lease.tokens > 0 and now < lease.valid_until]
        return self.leases

    async def _pass(self, now: float, keep: int) -> Hold | None:
        usable = [lease for lease in self._live(now) if lease.usable(now)]
        if sum(lease.tokens for lease in usable) - keep < 1:
            return None
        lease = min(usable, key=lambda lease: lease.valid_until)
        lease.tokens -= 1
        return _Token(lambda: self._give_back(lease))

    def _give_back(self, lease: Lease) -> None:
        lease.tokens += 1
        if lease not in self.leases:
            self.leases.append(lease)

    async def ready(self) -> None:
        while True:
            now = self.clock.now()
            live = self._live(now)
            promised = self.promised(now)
            if sum(lease.tokens for lease in live if lease.usable(now)) - promised >= 1:
                return
            if sum(lease.tokens for lease in live) - promised >= 1:
                # A reserved batch covers the next waiter once it becomes valid.
                await self.changed.wait(
                    min(lease.valid_from for lease in live if lease.valid_from > now) - now
                )
                continue
            # Nothing reserved is left for the next waiter (promised steps may still
            # be on their way to what is): reserve the next batch now.
            want = max(1, min(self.plan.batch, len(self.waiters)))
            valid_from = await self.store.reserve_tokens(
                self.bucket, want, self.limit.per_second, self.plan.capacity, now
            )
            self.leases.append(Lease(want, valid_from, valid_from + self.plan.hold))

    def idle(self, now: float) -> bool:
        return not self._live(now) and super().idle(now)


# -- concurrency limits -------------------------------------------------------------


class _Slot(Hold):
    def __init__(self, free: Callable[[], Awaitable[None]]) -> None:
        self._free = free
        self._freed = False

    async def release(self) -> None:
        if not self._freed:
            self._freed = True
            await self._free()

    async def undo(self) -> None:
        await self.release()


class ProcessSlots(Gate):
    """At most ``limit`` steps of this bucket in flight in this process."""

    def __init__(
        self, limit: ConcurrencyLimit, bucket: str, clock: Clock, weight_of: Callable[[str], int]
    ) -> None:
        super().__init__(bucket, clock, weight_of)
        self.limit = limit
        self.in_use = 0

    @property
    def name(self) -> str:
        return self.limit.name

    async def _pass(self, now: float, keep: int) -> Hold | None:
        if self.limit.limit - self.in_use - keep < 1:
            return None
        self.in_use += 1
        return _Slot(self._free)

    async def _free(self) -> None:
        self.in_use -= 1
        self.changed.notify()

    async def ready(self) -> None:
        while self.limit.limit - self.in_use - self.promised(self.clock.now()) < 1:
            await self.changed.wait(PROMISE_TTL)

    def idle(self, now: float) -> bool:
        return self.in_use == 0 and super().idle(now)


@dataclass
class SlotLeases:
    """The global slots this worker holds, renewed while their steps run."""

    holder: str
    held: dict[tuple[str, int], float] = field(default_factory=dict)


class GlobalSlots(Gate):
    """At most ``limit`` steps of this bucket in flight across all workers: leases in the store."""

    def __init__(
        self,
        limit: ConcurrencyLimit,
        bucket: str,
        clock: Clock,
        weight_of: Callable[[str], int],
        store: FlowStore,
        leases: SlotLeases,
        poll: float,
    ) -> None:
        super().__init__(bucket, clock, weight_of)
        self.limit = limit
        self.store = store
        self.leases = leases
        self.poll = poll
        self.holding = 0

    @property
    def name(self) -> str:
        return self.limit.name

    async def _pass(self, now: float, keep: int) -> Hold | None:
        if keep:
            return None  # steps of this worker were promised the free slots
        slot = await self.store.acquire_slot(
            self.bucket, self.limit.limit, self.leases.holder, now, self.limit.lease
        )
        if slot is None:
            return None
        self.leases.held[(self.bucket, slot)] = self.limit.lease
        self.holding += 1
        return _Slot(lambda: self._free(slot))

    async def _free(self, slot: int) -> None:
        # Forget it first: if the store is away, the lease is no longer renewed
        # and the slot comes back when it expires.
        self.leases.held.pop((self.bucket, slot), None)
        self.holding -= 1
        self.changed.notify()
        await self.store.release_slot(self.bucket, slot, self.leases.holder)

    async def ready(self) -> None:
        while True:
            now = self.clock.now()
            used, soonest = await self.store.slots_in_use(self.bucket, now)
            if used + self.promised(now) < self.limit.limit:
                return
            # Another worker's slot frees without telling us: look again soon,
            # or when its lease runs out, whichever comes first.
            until_expiry = (soonest - now) if soonest is not None else self.poll
            await self.changed.wait(max(0.01, min(self.poll, until_expiry)))

    def idle(self, now: float) -> bool:
        return self.holding == 0 and super().idle(now)
