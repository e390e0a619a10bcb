"""The engine: the one place where a run changes.

Every change -- a step result, a timer, a signal, an operator action, a new
run -- goes through :meth:`Engine.apply` or :meth:`Engine.start`: read the
run, ``decide``, commit under the optimistic lock, publish the outbox. When
the commit loses the race (another worker moved the run), the engine reads
the fresh run and decides again; the event is never applied twice and never
lost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio

from legato.app import App
from legato.broker.base import APP_HEADER, Broker
from legato.children import with_children
from legato.clock import Clock, SystemClock
from legato.errors import BrokerError, RunNotFound, StoreError
from legato.machine.combine import combine
from legato.machine.commands import Decision, Rejection
from legato.machine.decide import decide, start_run
from legato.machine.definition import Priority
from legato.machine.events import Event
from legato.machine.run import Run
from legato.machine.values import JSON
from legato.observe import AppliedInput, ConflictInput, MessageHeadersInput, Observer, RejectedInput
from legato.store.base import Applied, Conflict, Guard, GuardFailed, OutboxMessage
from legato.store.effects import effects
from legato.store.ports import TransitionStore
from legato.store.rows import new_run_id
from legato.turns import Turns

log = logging.getLogger("legato.engine")

MAX_CONFLICTS = 1000
"""Re-decisions before giving up. A run takes one decision per group commit, so
a parallel state whose N branches finish at once in one worker needs up to N;
past a thousand, something moves the run in a loop."""


_BATCH_MAX = 64
"""Events of one run decided and committed together, at most."""


@dataclass(eq=False)
class _Pending:
    """An event waiting for its run's turn."""

    event: Event
    guard: Guard | None
    headers: Mapping[str, str] | None
    local: Local | None
    outcome: Decision | Rejection | None = None
    """Set when a previous holder of the turn applied it with its own event."""

    @property
    def joinable(self) -> bool:
        # A guard is checked in the commit of its own event, and extra headers
        # are its own messages': such an event goes alone.
        return self.guard is None and self.headers is None

    def joins(self, leader: _Pending) -> bool:
        """Whether it can be committed with ``leader``'s event (its messages
        offered to the same local dispatcher)."""
        return self.outcome is None and self.joinable and self.local is leader.local


@dataclass(frozen=True)
class Started:
    run: Run
    created: bool
    """False when the idempotency key had a run already: ``run`` is that run."""


class Local(Protocol):
    def offer(self, message: OutboxMessage, run: Run) -> bool:
        """Take a committed task message to run in this process, or refuse it (False)."""


class Engine:
    def __init__(
        self,
        app: App,
        store: TransitionStore,
        broker: Broker | None,
        clock: Clock | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.broker = broker
        self.clock = clock or SystemClock()
        self.observer = observer or Observer()
        # Per transition, so only built when someone listens (observe.py).
        self._observes_applied = self.observer.overrides(Observer.applied)
        self._observes_headers = self.observer.overrides(Observer.message_headers)
        self._turns: Turns[_Pending] = Turns()

    async def start(
        self,
        workflow: str,
        input: Mapping[str, JSON],
        *,
        key: str | None = None,
        priority: Priority | None = None,
        trace_context: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        local: Local | None = None,
    ) -> Started:
        """Start a run of the newest version of ``workflow``.

        With ``key``, starting twice returns the first run instead of a second.
        """
        definition = self.app.workflow(workflow)
        idempotency_key = f"{definition.name}:{key}" if key is not None else None
        now = self.clock.now()
        decision = start_run(
            definition,
            new_run_id(),
            input,
            now,
            idempotency_key=idempotency_key,
            priority=priority,
            trace_context=trace_context,
        )
        decision = with_children(self.app, decision, now)
        created = await self.store.create_run(decision, self._headers(decision.run, headers))
        if created.created:
            if self._observes_applied:
                self.observer.applied(AppliedInput(decision, created=True))
            await self.publish(created.outbox, created.run, local)
        return Started(created.run, created.created)

    async def apply(
        self,
        run: Run | str,
        event: Event,
        *,
        guard: Guard | None = None,
        headers: Mapping[str, str] | None = None,
        local: Local | None = None,
    ) -> Decision | Rejection:
        """Apply ``event`` to the run (given, or loaded by id); retry on conflicts.

        Events for the same run that wait for their turn meanwhile are decided
        after it and committed with it, as one transition (machine/combine.py);
        each caller gets that transition back.
        """
        run_id = run.id if isinstance(run, Run) else run
        pending = _Pending(event, guard, headers, local)
        async with self._turns.take(run_id, pending) as turn:
            if pending.outcome is not None:
                return pending.outcome  # a previous holder applied it with its own
            batch = [pending]
            if pending.joinable:
                batch += [p for p in turn.queue if p is not pending and p.joins(pending)][: _BATCH_MAX - 1]
            current = turn.fresher(run if isinstance(run, Run) else None)
            if len(batch) == 1:
                outcome, applied = await self._decide_and_commit(run_id, current, event, guard, headers)
            else:
                # The others' callers wait for this commit: see it through.
                with anyio.CancelScope(shield=True):
                    outcome, applied = await self._decide_together(run_id, current, batch)
            if applied is not None:
                turn.latest = applied.run
        if applied is not None:
            await self.publish(applied.outbox, applied.run, local)
        return outcome

    async def _decide_together(
        self, run_id: str, current: Run | None, batch: list[_Pending]
    ) -> tuple[Decision | Rejection, Applied | None]:
        """Decide ``batch``'s events in order and commit as many as can go
        together; the rest wait for their own turns. The first is always decided."""
        for _ in range(MAX_CONFLICTS):
            if current is None:
                current = await self.store.load_run(run_id)
                if current is None:
                    raise RunNotFound(run_id)
            decided = self._decide_in_turn(current, batch)
            if isinstance(decided, Rejection):
                await self._reject(current, batch[0].event, decided)
                return decided, None
            together, result = await self._commit_together(decided)
            if isinstance(result, Applied):
                if self._observes_applied:
                    self.observer.applied(AppliedInput(together, created=False))
                # All of them, or only the first if the store refused them together.
                committed = 1 if together is decided[0] else len(decided)
                for pending in batch[1:committed]:
                    pending.outcome = together
                return together, result
            self.observer.conflict(ConflictInput(run_id))
            current = None
        raise StoreError(f"run {run_id} kept changing: gave up after {MAX_CONFLICTS} conflicts")

    def _decide_in_turn(self, current: Run, batch: list[_Pending]) -> list[Decision] | Rejection:
        """The decisions of the first events of ``batch`` that can be committed
        together, each made from the run the one before made; or the first's refusal."""
        definition = self.app.workflow(current.workflow, current.workflow_version)
        now = self.clock.now()
        decisions: list[Decision] = []
        run = current
        for pending in batch:
            try:
                outcome = decide(definition, run, pending.event, now)
                if isinstance(outcome, Decision):
                    outcome = with_children(self.app, outcome, now)
            except Exception:
                if decisions:
                    break  # its own caller meets the error, in its own turn
                raise
            if isinstance(outcome, Rejection):
                if decisions:
                    break  # decided again in its own turn, and refused there
                return outcome
            # Only what group commit carries goes together (history, task and
            # notice messages, map items: rows that do not depend on each other's
            # order); a transition with timers, dead letters or children goes alone.
            alone = not effects(outcome).group_commit
            if decisions and alone:
                break
            decisions.append(outcome)
            run = outcome.run
            if alone:
                break
        return decisions

    async def _commit_together(self, decisions: list[Decision]) -> tuple[Decision, Applied | Conflict]:
        """Commit ``decisions`` as one transition; if the store fails, the first alone."""
        together = combine(decisions)
        try:
            result = await self.store.apply(together, None, self._headers(together.run, None))
        except StoreError:
            if len(decisions) == 1:
                raise
            # The database may have refused another's part: commit the first
            # alone; the others try again in their own turns, and only the
            # culprit fails (as group commit does across runs).
            together = decisions[0]
            result = await self.store.apply(together, None, self._headers(together.run, None))
        assert isinstance(result, Applied | Conflict)
        return together, result

    async def _decide_and_commit(
        self,
        run_id: str,
        current: Run | None,
        event: Event,
        guard: Guard | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[Decision | Rejection, Applied | None]:
        for _ in range(MAX_CONFLICTS):
            if current is None:
                current = await self.store.load_run(run_id)
                if current is None:
                    raise RunNotFound(run_id)
            definition = self.app.workflow(current.workflow, current.workflow_version)
            now = self.clock.now()
            outcome = decide(definition, current, event, now)
            if isinstance(outcome, Decision):
                outcome = with_children(self.app, outcome, now)
            if isinstance(outcome, Rejection):
                await self._reject(current, event, outcome)
                return outcome, None
            result = await self.store.apply(outcome, guard, self._headers(outcome.run, headers))
            if isinstance(result, Applied):
                if self._observes_applied:
                    self.observer.applied(AppliedInput(outcome, created=False))
                return outcome, result
            if isinstance(result, GuardFailed):
                return Rejection(result.reason), None
            assert isinstance(result, Conflict)
            self.observer.conflict(ConflictInput(run_id))
            current = None
        raise StoreError(f"run {run_id} kept changing: gave up after {MAX_CONFLICTS} conflicts")

    async def _reject(self, run: Run, event: Event, rejection: Rejection) -> None:
        await self.store.record_rejection(run, type(event).__name__, rejection.reason, self.clock.now())
        self.observer.rejected(RejectedInput(run, type(event).__name__, rejection.reason))

    def _headers(self, run: Run, headers: Mapping[str, str] | None) -> Mapping[str, str]:
        # Every message names the app whose engine made it: its tasks go to that
        # app's queues, whoever publishes them (the outbox relay of any app).
        own = {APP_HEADER: self.app.name}
        extra = self.observer.message_headers(MessageHeadersInput(run)) if self._observes_headers else None
        return {**own, **(extra or {}), **(headers or {})}

    async def publish(
        self, outbox: Sequence[OutboxMessage], run: Run | None = None, local: Local | None = None
    ) -> None:
        """Publish committed outbox messages, then forget them.

        ``local`` may take task messages to run in this process instead (eager
        dispatch); their rows stay until it settles them. Without a broker in
        this process, or when the broker fails, the messages stay in the outbox
        and a worker's relay publishes them.
        """
        if local is not None and run is not None:
            outbox = [m for m in outbox if not local.offer(m, run)]
        if not outbox or self.broker is None:
            return
        try:
            await self.broker.publish(outbox)
        except BrokerError as exc:
            log.warning("publish failed, the outbox relay will retry: %s", exc)
            return
        await self.store.outbox_done([m.id for m in outbox])
