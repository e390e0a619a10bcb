"""The store's ports, one per role: callers take the narrow role they use.

A backend (:class:`~legato.store.postgres.PostgresStore`,
:class:`~legato.store.sqlite.SqliteStore`) implements them all, which is what
:class:`Store` names; the timer poller needs only :class:`TimerStore`, the
relay only :class:`OutboxStore`, and so on. One contract suite per role
(tests/contract/test_store_*.py) runs against every backend.

A transition is applied by :meth:`RunStore.apply` in one transaction: the
conditional update of the run on its version and the decision's effects
(:func:`legato.store.effects.effects`: history rows, outbox rows, timers,
dead letters) -- all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from legato.machine.commands import Decision
from legato.machine.run import Run, RunStatus
from legato.machine.vocabulary import DeadLetterStatus
from legato.store.base import (
    Applied,
    CompletionRecord,
    Conflict,
    Created,
    DeadLetterGroup,
    DeadLetterRecord,
    DueTimer,
    Fired,
    Guard,
    GuardFailed,
    HistoryEntry,
    LeaseDetails,
    LeaseEnd,
    LeaseGrant,
    MapItem,
    OutboxMessage,
    PoisonMessage,
    RunQuery,
    ScheduleFiring,
    StoredSchedule,
    TickRecord,
)
from legato.store.retention import RetentionStore


class StoreLifecycle(Protocol):
    """Connecting, and the schema."""

    async def open(self) -> None:
        """Connect (and, for SQLite, create the file).

        Opens are counted: each is matched by a :meth:`close`, and the last
        close disconnects, so a worker and a client can share one store.
        """

    async def close(self) -> None: ...

    async def migrate(self) -> list[str]:
        """Apply the migrations not applied yet; return their names."""

    async def ping(self) -> None:
        """Raise :class:`~legato.errors.StoreError` when the store is unreachable."""


class RunStore(Protocol):
    """Runs and their transitions: the only way a run changes."""

    async def create_run(self, decision: Decision, headers: Mapping[str, str] | None = None) -> Created:
        """Insert a new run with its first transition, unless its idempotency key exists."""

    async def load_run(self, run_id: str) -> Run | None: ...

    async def apply(
        self,
        decision: Decision,
        guard: Guard | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Applied | Conflict | GuardFailed:
        """Apply a transition if the run is still at ``decision.previous_version``."""

    async def record_rejection(self, run: Run, event: str, reason: str, at: float) -> None:
        """Append a ``rejected`` line to the history; the run does not change."""

    async def list_runs(self, query: RunQuery) -> list[Run]: ...

    async def history(self, run_id: str) -> list[HistoryEntry]: ...

    async def map_items(self, run_id: str, map_seq: int, after: int = -1, limit: int = 100) -> list[MapItem]:
        """The finished items of a map, by index, from index ``after + 1`` (a page at a time)."""

    async def children(self, run_id: str) -> list[Run]:
        """The child runs ``run_id`` started (child states), oldest first."""

    async def run_ids_starting_with(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` ids of runs whose id starts with ``prefix``, in order
        (none when ``prefix`` cannot start a run id); what short ids resolve through."""

    async def count_runs(self, query: RunQuery) -> int:
        """How many runs :meth:`list_runs` would list without its limit."""


class OutboxStore(Protocol):
    """Messages committed with transitions, until they are published."""

    async def claim_outbox(
        self, older_than: float, now: float, lease: float, limit: int
    ) -> list[OutboxMessage]:
        """Messages committed before ``older_than`` and not published yet
        (deferred deletions are carried out first).

        Claimed for ``lease`` seconds so that two relays do not both publish them.
        """

    async def outbox_done(self, ids: Sequence[int]) -> None:
        """Forget published outbox rows; a backend may defer the deletion until
        :meth:`flush_outbox`, which the relay calls every cycle."""

    async def claim_outbox_rows(self, ids: Sequence[int], until: float) -> None:
        """Keep the relay off these rows until ``until``: their messages are being
        handled in this process (eager dispatch)."""

    async def flush_outbox(self) -> None:
        """Carry out deferred outbox deletions now."""


class TimerStore(Protocol):
    """Durable timers: scheduled and cancelled by transitions, fired by the poller."""

    async def claim_timers(self, now: float, lease: float, limit: int) -> list[DueTimer]:
        """Due timers, each leased to the caller for ``lease`` seconds."""

    async def drop_timer(self, timer_id: int) -> None:
        """Delete a timer that turned out to be stale."""

    async def next_timer_at(self) -> float | None: ...

    async def subscribe_timers(self, wake: Callable[[float], None]) -> None:
        """Call ``wake(fire_at)`` whenever a timer is scheduled: by any process
        (Postgres: LISTEN/NOTIFY) or by this one (SQLite; the others' are found
        by polling).

        Idempotent, and called again on every poll: it reconnects a listener
        that died with its server.
        """


@runtime_checkable
class RunWatch(Protocol):
    """Being told when a run's status changes, instead of reading it again and again."""

    watches_every_process: bool
    """True when the changes other processes make are told too (Postgres)."""

    async def subscribe_runs(self, watch: Callable[[str, RunStatus], None]) -> None:
        """Call ``watch(run_id, status)`` when a run's status changes: in any
        process (Postgres: a trigger's NOTIFY) or in this one (SQLite; the other
        processes' changes are found by reading).

        Idempotent, and meant to be called again now and then: it reconnects a
        listener that died with its server. Raises
        :class:`~legato.errors.StoreError` when it cannot listen.
        """

    async def unsubscribe_runs(self, watch: Callable[[str, RunStatus], None]) -> None: ...


class LeaseStore(Protocol):
    """Leases on running steps (tasks with ``heartbeat_timeout``): who runs the
    attempt, until when, and what it last reported. Each lease comes with the
    heartbeat timer ``heartbeat:<seq>``, whose ``fire_at`` moves with the lease's
    expiry, so the timer fires only when the lease ran out. Time is passed in."""

    async def acquire_lease(
        self, run_id: str, seq: int, attempt: int, holder: str, now: float, timeout: float
    ) -> LeaseGrant | None:
        """Hold the step attempt until ``now + timeout``, and arm its heartbeat timer.

        None when the attempt is held (a redelivery while it still runs), or was
        let go: released, or taken by its heartbeat timer (the step is being
        dispatched again as a new attempt). A lease that ran out and was not
        taken yet can be taken over; then its timer moves on with it. The grant
        carries the details the last holder of this step reported.
        """

    async def renew_lease(
        self,
        run_id: str,
        seq: int,
        attempt: int,
        holder: str,
        now: float,
        timeout: float,
        details: LeaseDetails | None = None,
    ) -> bool:
        """Extend the lease to ``now + timeout`` (recording ``details`` when given).

        False when the lease is no longer ``holder``'s: it ran out and its
        timer fired, so the step is being dispatched again.
        """

    async def release_lease(
        self, run_id: str, seq: int, attempt: int, holder: str, end: LeaseEnd, now: float
    ) -> None:
        """The attempt is over here (``end`` says how); its heartbeat timer goes,
        except for an abandoned attempt, whose timer fires at once."""

    async def expire_lease(self, run_id: str, seq: int, attempt: int, now: float) -> bool:
        """The heartbeat timer fired: take the lease from its holder if it ran out.

        True for exactly one caller per expiry; False when the lease was renewed,
        released or taken over meanwhile.
        """

    async def lease_details(self, run_id: str, seq: int) -> LeaseDetails | None:
        """What the step last reported through ``ctx.heartbeat``."""


class CompletionStore(Protocol):
    """Completion tokens (machine/completion.py): written and settled by the
    transitions that record and end a step's wait (store/effects.py); read here."""

    async def find_completion(self, digest: str) -> CompletionRecord | None:
        """The token whose SHA-256 is ``digest``; None when there is none (a wrong
        token, or one whose run retention removed)."""


class DeadLetterStore(Protocol):
    """Work that could not be processed, kept for an operator."""

    async def record_poison(self, poison: PoisonMessage, at: float) -> int:
        """Keep a poison message as a dead letter (idempotent on its fingerprint)."""

    async def list_dead_letters(
        self, workflow: str | None = None, status: str | None = "open", limit: int = 100, *, offset: int = 0
    ) -> list[DeadLetterRecord]:
        """Newest first; ``offset`` skips that many (the pages after the first)."""

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None: ...

    async def group_dead_letters(
        self, by: str, workflow: str | None = None, status: str | None = "open"
    ) -> list[DeadLetterGroup]:
        """Count dead letters by ``error`` (type and normalised message:
        :func:`legato.patterns.failure_key`), ``state`` or ``workflow``; the most
        frequent first, each with its newest sample."""

    async def resolve_dead_letter(
        self,
        dead_letter_id: int,
        actor: str,
        at: float,
        status: DeadLetterStatus = DeadLetterStatus.REPLAYED,
    ) -> bool:
        """Close an open dead letter outside a run transition: ``replayed`` (a poison
        message published again) or ``resolved`` (``dlq resolve``). False when it was
        not open."""

    async def reopen_dead_letter(self, dead_letter_id: int) -> None:
        """Undo :meth:`resolve_dead_letter` (its replay could not be published)."""

    async def purge_dead_letters(self, older_than: float | None) -> int:
        """Delete dead letters created before ``older_than`` (all when None); return how many."""

    async def count_dead_letters(
        self, workflow: str | None = None, status: str | None = "open", older_than: float | None = None
    ) -> int:
        """How many dead letters match (created before ``older_than`` when given): what
        a listing leaves out beyond its limit, what a purge would delete."""


class FlowStore(Protocol):
    """Flow-control state shared by every worker: global token buckets and
    concurrency slot leases (docs/flow-control.md). Time is passed in."""

    async def reserve_tokens(
        self, bucket: str, count: int, rate: float, capacity: float, now: float
    ) -> float:
        """Take ``count`` tokens from a global bucket and return the time they are valid from.

        A bucket seen for the first time starts full. When it does not hold
        ``count`` tokens it goes into debt, and the tokens are valid once the
        refill (``rate`` per second, up to ``capacity``) has paid the debt off;
        reservations are thus served in order and never refused.
        """

    async def acquire_slot(
        self, bucket: str, limit: int, holder: str, now: float, lease: float
    ) -> int | None:
        """Lease one of ``limit`` slots of ``bucket`` to ``holder`` for ``lease`` seconds.

        Returns the slot number, or None when ``limit`` unexpired leases exist.
        An expired lease counts as free: that is how a dead holder's slot comes back.
        """

    async def release_slot(self, bucket: str, slot: int, holder: str) -> None:
        """Give a slot back (a no-op if ``holder`` lost it to expiry meanwhile)."""

    async def renew_slots(
        self, holder: str, slots: Sequence[tuple[str, int]], now: float
    ) -> list[tuple[str, int]]:
        """Extend these leases of ``holder`` by their lease time from ``now``; return those still held."""

    async def slots_in_use(self, bucket: str, now: float) -> tuple[int, float | None]:
        """Unexpired leases of ``bucket``, and the soonest time one of them expires."""

    async def purge_flow_state(self, now: float) -> int:
        """Forget buckets that are full again and leases expired a while ago; return how many."""


class ScheduleStore(Protocol):
    """Schedules and their history; a firing is one transaction (docs/events.md)."""

    async def save_schedule(self, schedule: StoredSchedule, timer_at: float | None) -> None:
        """Create or replace a schedule, and its timer (none when ``timer_at`` is None)."""

    async def get_schedule(self, name: str) -> StoredSchedule | None: ...

    async def list_schedules(self, workflow: str | None = None) -> list[StoredSchedule]: ...

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule, its timer and its history; False if there was none."""

    async def fire_schedule(
        self, firing: ScheduleFiring, headers: Mapping[str, str] | None = None
    ) -> Fired | None:
        """Write one firing in one transaction; None (nothing written) when its
        timer is gone: another replica fired it, or the schedule changed."""

    async def schedule_ticks(self, name: str, limit: int = 50) -> list[TickRecord]:
        """The schedule's history, newest first."""


class TransitionStore(RunStore, OutboxStore, DeadLetterStore, CompletionStore, Protocol):
    """What applying events takes (the engine, the client, the dashboard): runs,
    the outbox their transitions fill, dead letters (a replay is a transition
    guarded on one; a message that never becomes a transition is kept as one)
    and completion tokens (a completion is a transition of the token's run)."""


class Store(
    StoreLifecycle,
    RunStore,
    OutboxStore,
    TimerStore,
    RunWatch,
    LeaseStore,
    DeadLetterStore,
    CompletionStore,
    FlowStore,
    RetentionStore,
    ScheduleStore,
    Protocol,
):
    """Every role: what a backend implements, and what wiring code passes around.

    Code that uses a store takes the narrowest role (or union of roles) it needs.
    """
