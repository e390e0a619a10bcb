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

from legato.app import App
from legato.broker.base import APP_HEADER, Broker
from legato.children import with_children
from legato.clock import Clock, SystemClock
from legato.errors import BrokerError, RunNotFound, StoreError
from legato.machine.commands import Decision, Rejection
from legato.machine.decide import decide, start_run
from legato.machine.definition import Priority
from legato.machine.events import Event
from legato.machine.run import Run
from legato.machine.values import JSON
from legato.observe import AppliedInput, ConflictInput, MessageHeadersInput, Observer, RejectedInput
from legato.store.base import Applied, Conflict, Guard, GuardFailed, OutboxMessage
from legato.store.ports import TransitionStore
from legato.store.rows import new_run_id
from legato.turns import Turns

log = logging.getLogger("legato.engine")

MAX_CONFLICTS = 1000
"""Re-decisions before giving up. A run takes one decision per group commit, so
a parallel state whose N branches finish at once in one worker needs up to N;
past a thousand, something moves the run in a loop."""


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
        self._turns = Turns()

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
        """Apply ``event`` to the run (given, or loaded by id); retry on conflicts."""
        run_id = run.id if isinstance(run, Run) else run
        async with self._turns.take(run_id) as turn:
            current = turn.fresher(run if isinstance(run, Run) else None)
            outcome, applied = await self._decide_and_commit(run_id, current, event, guard, headers)
            if applied is not None:
                turn.latest = applied.run
        if applied is not None:
            await self.publish(applied.outbox, applied.run, local)
        return outcome

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
                await self.store.record_rejection(
                    current, type(event).__name__, outcome.reason, self.clock.now()
                )
                self.observer.rejected(RejectedInput(current, type(event).__name__, outcome.reason))
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
