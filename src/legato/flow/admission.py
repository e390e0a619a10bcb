"""Admission: whether a step may start now, given the rate and concurrency
limits its task uses, and what happens to it when it may not.

The worker asks :meth:`Admission.admit` with a concurrency slot held, after
loading the run (a key can come from its data) and right before the
handler, so a token is taken when the step really starts. The answer never
waits. A step that may not pass is *parked* in the waiting room
(:mod:`legato.flow.waiting`, which says what that means) at the gate of the
bucket that refused it. The gate's pump wakes waiters one at a time, in
priority order, when a token or slot is due.

Waiting time is recorded per limit in the step's history and reported to
:meth:`Observer.rate_limit_waited`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup, TaskStatus

from legato.broker.base import Delivery
from legato.clock import Clock
from legato.errors import StoreError
from legato.flow.gates import Gate, GlobalRate, GlobalSlots, Hold, ProcessRate, ProcessSlots, SlotLeases
from legato.flow.waiting import Ticket, WaitingRoom
from legato.machine.events import Waited
from legato.machine.limits import ConcurrencyLimit, Limit, LimitUse, RateLimit, bucket_name
from legato.machine.states import Task
from legato.machine.values import Data
from legato.observe import Observer, RateLimitWaitedInput
from legato.store.ports import FlowStore

log = logging.getLogger("legato.flow")

TIDY_EVERY = 30.0
"""Seconds between sweeps of idle gates (one per bucket seen, so per key)."""

PURGE_EVERY = 300.0
"""Seconds between purges of full buckets and expired leases from the store."""


@dataclass(frozen=True)
class Permit:
    """What an admitted step holds; :meth:`release` it on every outcome."""

    holds: tuple[Hold, ...] = ()
    waited: Waited = ()

    async def release(self) -> None:
        for hold in self.holds:
            try:
                await hold.release()
            except StoreError as exc:
                log.warning("could not give a concurrency slot back (its lease will expire): %s", exc)


FREE = Permit()
"""The permit of a step whose task uses no limit."""


@dataclass
class AdmissionSettings:
    slot_poll_interval: float = 0.25
    """How often a worker waiting for a global concurrency slot looks whether
    another worker freed one (a slot freed in this process wakes it at once)."""
    retry_pause: float = 1.0
    """Pause before a gate tries the store again after an error."""
    holder: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )
    """This worker's name on the concurrency leases it holds."""


class Admission:
    def __init__(
        self,
        limits: Mapping[str, Limit],
        store: FlowStore,
        clock: Clock,
        room: WaitingRoom,
        *,
        weight_of: Callable[[str], int],
        observer: Observer | None = None,
        settings: AdmissionSettings | None = None,
    ) -> None:
        self.limits = limits
        self.store = store
        self.clock = clock
        self.room = room
        self.weight_of = weight_of
        self.observer = observer or Observer()
        self.settings = settings or AdmissionSettings()
        self.leases = SlotLeases(self.settings.holder)
        self._gates: dict[tuple[str, str], Gate] = {}
        self._group: TaskGroup | None = None

    @property
    def waiting(self) -> int:
        """Steps parked at a gate right now."""
        return self.room.waiting

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the gates' pumps and the lease renewal; runs until cancelled."""
        async with anyio.create_task_group() as group:
            self._group = group
            group.start_soon(self._keep_leases, name="admission:leases")
            group.start_soon(self._tidy, name="admission:tidy")
            task_status.started()

    async def admit(self, delivery: Delivery, task: Task, data: Data) -> Permit | None:
        """Let the step start (a :class:`Permit`), or park it and return None."""
        uses = task.limit_uses()
        if not uses:
            return FREE
        now = self.clock.now()
        ticket = self.room.returning(delivery)
        if ticket is not None:
            ticket.resume(now)
        holds: list[Hold] = []
        try:
            for use in uses:
                gate = self._gate(use, data)
                hold = await gate.enter(ticket, now)
                if hold is None:
                    await self._undo(holds)
                    holds.clear()
                    await self._park(ticket or Ticket(delivery), gate, now, front=ticket is not None)
                    return None
                holds.append(hold)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._undo(holds)
            raise
        if ticket is None:
            return Permit(tuple(holds))
        for name, seconds in ticket.waited.items():
            if isinstance(self.limits[name], RateLimit):
                self.observer.rate_limit_waited(RateLimitWaitedInput(name, seconds))
        return Permit(tuple(holds), tuple(ticket.waited.items()))

    async def _undo(self, holds: list[Hold]) -> None:
        for hold in reversed(holds):
            await hold.undo()

    async def _park(self, ticket: Ticket, gate: Gate, now: float, front: bool) -> None:
        if not await self.room.park(ticket, gate, now, front):
            return
        if not gate.pumping:
            if self._group is None:
                raise RuntimeError("Admission.run() is not running")
            gate.pumping = True
            self._group.start_soon(self._pump, gate, name=f"admission:{gate.bucket}")

    def _gate(self, use: LimitUse, data: Data) -> Gate:
        bucket = bucket_name(use, data)
        gate = self._gates.get((use.name, bucket))
        if gate is None:
            gate = self._gates[(use.name, bucket)] = self._new_gate(self.limits[use.name], bucket)
        return gate

    def _new_gate(self, limit: Limit, bucket: str) -> Gate:
        if isinstance(limit, RateLimit):
            if limit.scope == "process":
                return ProcessRate(limit, bucket, self.clock, self.weight_of)
            return GlobalRate(limit, bucket, self.clock, self.weight_of, self.store)
        assert isinstance(limit, ConcurrencyLimit)
        if limit.scope == "process":
            return ProcessSlots(limit, bucket, self.clock, self.weight_of)
        return GlobalSlots(
            limit,
            bucket,
            self.clock,
            self.weight_of,
            self.store,
            self.leases,
            self.settings.slot_poll_interval,
        )

    async def _pump(self, gate: Gate) -> None:
        """Wake the gate's waiters one by one as tokens or slots come due."""
        try:
            while len(gate.waiters):
                try:
                    await gate.ready()
                except StoreError as exc:
                    log.warning("flow-control state unavailable for %s: %s", gate.bucket, exc)
                    await anyio.sleep(self.settings.retry_pause)
                    continue
                ticket = gate.waiters.pick()
                if ticket is None:
                    break
                # Not woken if it is gone meanwhile (given back on shutdown). The
                # promise follows at once: the woken step cannot run before it.
                if self.room.wake(ticket):
                    gate.promise(ticket, self.clock.now())
        finally:
            gate.pumping = False

    async def _keep_leases(self) -> None:
        """Renew the global concurrency slots held by steps in flight, three times a lease."""
        leases = [
            limit.lease
            for limit in self.limits.values()
            if isinstance(limit, ConcurrencyLimit) and limit.scope == "global"
        ]
        if not leases:
            return
        while True:
            await anyio.sleep(min(leases) / 3)
            held = list(self.leases.held)
            if not held:
                continue
            try:
                kept = set(await self.store.renew_slots(self.leases.holder, held, self.clock.now()))
            except StoreError as exc:
                log.warning("could not renew %d concurrency leases: %s", len(held), exc)
                continue
            lost = [slot for slot in held if slot not in kept and slot in self.leases.held]
            if lost:
                log.warning("concurrency leases expired before their steps finished: %s", lost)

    async def _tidy(self) -> None:
        """Forget idle gates; purge the store now and then."""
        since_purge = 0.0
        while True:
            await anyio.sleep(TIDY_EVERY)
            now = self.clock.now()
            for key, gate in list(self._gates.items()):
                if gate.idle(now):
                    del self._gates[key]
            since_purge += TIDY_EVERY
            if since_purge >= PURGE_EVERY and any(limit.scope == "global" for limit in self.limits.values()):
                since_purge = 0.0
                try:
                    await self.store.purge_flow_state(now)
                except StoreError as exc:
                    log.warning("could not purge flow-control state: %s", exc)
