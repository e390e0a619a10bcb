"""The worker: one process type that does everything, any number of replicas.

It consumes events and task messages, runs many steps concurrently, fires
durable timers and relays the outbox. Every background task is started in
one task group and named; if a side task dies, the worker stops and the
error propagates, so the process exits non-zero with the reason.

Shutdown (``stop()``, SIGTERM): stop consuming, return buffered and parked
deliveries to the queue, let in-flight steps finish within ``grace`` seconds,
then cancel the rest, which returns their deliveries to the queue too.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import anyio
from anyio.abc import TaskGroup

from legato.app import App
from legato.broker.base import Broker, Delivery
from legato.clock import Clock, SystemClock
from legato.engine import Engine
from legato.errors import BrokerError, LegatoError, SchemaMissing, StoreError
from legato.flow.admission import Admission, AdmissionSettings
from legato.flow.waiting import WaitingRoom
from legato.lifecycle.archive import Archive
from legato.lifecycle.retention import Retention, RetentionPolicy
from legato.notices import is_notice
from legato.observe import Observer, Observers
from legato.scheduling.manage import Schedules
from legato.store.ports import Store
from legato.worker.dispatch import Dispatcher
from legato.worker.eager import Eager
from legato.worker.execute import INTERRUPT_GRACE
from legato.worker.failures import FailureLog
from legato.worker.handover import Handover
from legato.worker.inflight import InFlight
from legato.worker.middleware import Middleware, with_app_middleware
from legato.worker.notices import Notices
from legato.worker.poison import BugLedger, DeadLetterNotRecorded, Unrecorded, dead_letter_message
from legato.worker.relay import OutboxRelay
from legato.worker.startup import Patience
from legato.worker.steps import StepRunner
from legato.worker.timers import TimerPoller
from legato.worker.triggers import TriggerHandler

log = logging.getLogger("legato.worker")


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = 64
    """Steps run at once by this process."""
    prefetch: int | None = None
    """Unacknowledged deliveries per queue; defaults to ``concurrency``."""
    grace: float = 30.0
    """Seconds in-flight steps get to finish on shutdown."""
    migrate: bool = True
    """Apply pending migrations on start."""
    timer_poll_interval: float = 1.0
    timer_lease: float = 30.0
    relay_interval: float = 1.0
    relay_grace: float = 5.0
    """Age after which an unpublished outbox row counts as orphaned."""
    retry_pause: float = 1.0
    """Pause before giving a delivery back after a database or broker error."""
    eager: bool = True
    """Run the next step of a run here when a slot is free, instead of a round
    trip through the broker (docs/architecture.md, "Eager dispatch")."""
    waiting_room: int | None = None
    """Deliveries per queue that may wait for a rate or concurrency limit
    beyond the prefetch; defaults to four times the prefetch (docs/flow-control.md)."""
    slot_poll_interval: float = 0.25
    """How often a step waiting for a global concurrency slot looks again."""
    retention_days: float | None = None
    """Days a finished run is kept by default; None keeps runs forever. A
    workflow's own ``retention`` wins (docs/retention.md)."""
    dedupe_days: float | None = None
    """Days a removed run's idempotency key is kept after the run; defaults to
    the run's retention period."""
    retention_interval: float = 3600.0
    """Seconds between the retention passes of the workers (one worker at a time)."""
    retention_batch: int = 500
    """Runs removed per transaction."""
    archive_dir: str | None = None
    """Write every run to JSON Lines files here before removing it; off when unset."""
    interrupt_grace: float = INTERRUPT_GRACE
    """Seconds a sync handler has to return once interrupted (``ctx.cancelled``):
    its run was cancelled or failed, or it ran past its timeout."""
    handover: float = 600.0
    """Seconds a delivery that another version of the app serves (a rolling
    deploy) is handed back for one of its workers before it is dead-lettered
    (docs/operations.md, "Several apps on one namespace")."""
    startup_timeout: float = 60.0
    """Seconds a starting worker waits for a database or broker that is down or
    starting, trying again with backoff, before it exits with the error."""


class SideTaskDied(LegatoError):
    """A background task of the worker failed; the worker stops with this reason."""

    def __init__(self, name: str, error: BaseException) -> None:
        self.name = name
        super().__init__(f"worker stopped: its {name} task died: {type(error).__name__}: {error}")


async def supervised(
    name: str, run: Callable[[], Awaitable[None]], first_backoff: float = 0.5, max_backoff: float = 2.0
) -> None:
    """Run a side task; ride out a database or broker outage, die loudly on anything else.

    An outage is expected and temporary: the task waits and tries again (readiness
    probes report the outage meanwhile), never long, so that it is back at work
    within moments of the server's return. Any other error is a bug or a broken
    deployment, and limping on would hide it, so the worker stops.
    """
    backoff = first_backoff
    while True:
        try:
            await run()
            return
        except Exception as exc:
            if isinstance(exc, SchemaMissing):
                # A deployment to fix (`legato migrate`), not a bug: its one line says so.
                log.error("the %s task stopped: %s", name, exc)
                raise SideTaskDied(name, exc) from exc
            if not is_outage(exc):
                log.exception("the %s task died", name)
                raise SideTaskDied(name, exc) from exc
            log.warning("%s: %s; trying again in %.1fs", name, _first_line(exc), backoff)
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)


def is_outage(exc: BaseException) -> bool:
    """A database or broker outage, also when concurrent work met it together
    (an exception group of outages, from a task group)."""
    if isinstance(exc, StoreError | BrokerError):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(is_outage(inner) for inner in exc.exceptions)
    return False


def _brief(exc: BaseException) -> str:
    """One line of an error: its type and the first line of its message."""
    exc = _first_line(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _first_line(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class Worker:
    """Serves ``app``: consumes its events and step tasks, fires timers, relays the outbox.

    ``observer`` hears what the engine does and ``middleware`` wraps every step
    attempt outside the app's own middleware: both are how the process's
    telemetry plugs in (docs/middleware.md).
    """

    def __init__(
        self,
        app: App,
        store: Store,
        broker: Broker,
        settings: WorkerSettings | None = None,
        *,
        clock: Clock | None = None,
        observer: Observer | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self.app = app
        self.store = store
        self.broker = broker
        # This process consumes the events of this app: its queue and bindings.
        broker.topology = broker.topology.serving(app.name, app.events())
        self.settings = settings or WorkerSettings()
        self.clock = clock or SystemClock()
        # Every failed attempt is logged, whatever telemetry the process has.
        watchers = FailureLog() if observer is None else Observers([FailureLog(), observer])
        self.engine = Engine(app, store, broker, self.clock, watchers)
        self.dispatcher = Dispatcher(self.settings.concurrency)
        self.threads = anyio.CapacityLimiter(self.settings.concurrency)
        # Steps that wait for a limit wait here, and go back to the dispatcher when woken.
        self.waiting_room = WaitingRoom(self.dispatcher)
        self.admission = Admission(
            app.limits,
            store,
            self.clock,
            self.waiting_room,
            weight_of=self.dispatcher.weight_of,
            observer=self.engine.observer,
            settings=AdmissionSettings(
                slot_poll_interval=self.settings.slot_poll_interval, retry_pause=self.settings.retry_pause
            ),
        )
        self.eager = (
            Eager(self.dispatcher, store, broker, self.clock, claim_for=self.settings.relay_grace)
            if self.settings.eager
            else None
        )
        chain = with_app_middleware(middleware, app.middleware, self.clock)
        handover = Handover(app, self.clock, self.settings.retry_pause, self.settings.handover)
        self.inflight = InFlight(self.clock)
        self.steps = StepRunner(
            app,
            self.engine,
            broker,
            self.clock,
            self.threads,
            chain,
            self.admission,
            self.eager,
            self.inflight,
            self.settings.interrupt_grace,
            store,
            handover,
        )
        self.triggers = TriggerHandler(app, self.engine, broker, self.clock, self.eager, handover)
        self.notices = Notices(self.engine, self.clock, self.eager)
        self.schedules = Schedules(app, self.engine, store, self.clock)
        self.timers = TimerPoller(
            self.engine,
            store,
            self.clock,
            self.settings.timer_poll_interval,
            self.settings.timer_lease,
            schedules=self.schedules.firer,
        )
        self.relay = OutboxRelay(
            store, broker, self.clock, self.settings.relay_interval, self.settings.relay_grace
        )
        self.retention = Retention(
            store,
            RetentionPolicy.of(app, self.settings.retention_days, self.settings.dedupe_days),
            self.clock,
            holder=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            batch=self.settings.retention_batch,
            archive=Archive(self.settings.archive_dir) if self.settings.archive_dir else None,
            observer=self.engine.observer,
        )
        self.bugs = BugLedger()
        self.unrecorded = Unrecorded(first=self.settings.retry_pause)
        self._stopping = anyio.Event()
        self.started = anyio.Event()
        self.consuming = False

    def stop(self) -> None:
        """Begin a graceful shutdown; safe to call any number of times."""
        self._stopping.set()

    async def run(self) -> None:
        """Run until :meth:`stop` (or cancellation, which is a graceful stop too).

        Servers that are down or starting are waited for (``startup_timeout``).
        """
        patience = Patience(self.settings.startup_timeout, self.clock)
        await patience.wait_for("the database", self.store.open)
        try:
            await patience.wait_for("the broker", self.broker.connect)
            try:
                # Bound before the worker says it started: from now on the app's
                # events wait in its queue, even while no worker runs.
                await patience.wait_for("the broker", self.broker.bind_app)
                if self.settings.migrate:
                    applied = await patience.wait_for("the migrations", self.store.migrate)
                    if applied:
                        log.info("applied migrations: %s", ", ".join(applied))
                for name, outcome in (await self.schedules.reconcile()).items():
                    log.info("schedule %s: %s", name, outcome.value)
                await self._serve()
            finally:
                with anyio.CancelScope(shield=True):
                    await self.broker.close()
        finally:
            with anyio.CancelScope(shield=True):
                await self.store.close()

    async def _serve(self) -> None:
        prefetch = self.settings.prefetch or self.settings.concurrency
        async with anyio.create_task_group() as side:
            side.start_soon(supervised, "timers", self.timers.run, name="timers")
            side.start_soon(supervised, "outbox-relay", self.relay.run, name="outbox-relay")
            side.start_soon(supervised, "run-watch", self._watch_runs, name="run-watch")
            await side.start(self.admission.run, name="admission")
            if self.eager is not None:
                side.start_soon(supervised, "eager-claims", self.eager.keep_claims, name="eager-claims")
            # Always: besides retention (when set), a pass creates the history
            # partitions of the days ahead (Postgres).
            pass_every = partial(self.retention.loop, self.settings.retention_interval)
            side.start_soon(supervised, "retention", pass_every, name="retention")
            async with anyio.create_task_group() as steps:
                steps.start_soon(self._consume, prefetch, name="consumer")
                steps.start_soon(self.dispatcher.run, steps, self._handle, name="dispatcher")
                self.started.set()
                log.info(
                    "worker started: app %s, concurrency %d, workflows %s; events from %s",
                    self.app.name,
                    self.settings.concurrency,
                    ", ".join(self.app.names()) or "none",
                    self.broker.topology.app_queue,
                )
                try:
                    await self._stopping.wait()
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._shutdown(steps)
            side.cancel_scope.cancel()

    async def _watch_runs(self) -> None:
        await self.inflight.watch(self.store)

    async def _consume(self, prefetch: int) -> None:
        self.consuming = True
        try:
            waiting_room = self.settings.waiting_room
            if waiting_room is None:
                waiting_room = 4 * prefetch

            async def until_stopped() -> None:
                if not self._stopping.is_set():  # a retry after stop() must not consume again
                    await self.broker.consume(self.dispatcher.submit, prefetch, waiting_room)

            # The broker can go away while the consumers are being set up (a restart
            # just as the worker starts): an outage like any other, tried again.
            await supervised("consumer", until_stopped)
        finally:
            self.consuming = False

    async def _shutdown(self, steps: TaskGroup) -> None:
        log.info(
            "stopping: %d steps in flight, %.0fs grace",
            self.dispatcher.in_flight,
            self.settings.grace,
        )
        await self.broker.stop_consuming()
        # Both at once (no await between): nothing is woken or parked after this.
        for delivery in self.waiting_room.close() + self.dispatcher.close():
            await delivery.requeue()
        with anyio.move_on_after(self.settings.grace):
            await self.dispatcher.wait_idle()
        if self.dispatcher.in_flight:
            log.warning(
                "grace period over: returning %d in-flight steps to the queue",
                self.dispatcher.in_flight,
            )
        steps.cancel_scope.cancel()

    async def _handle(self, delivery: Delivery) -> None:
        try:
            if self.broker.topology.priority_of(delivery.queue) is None:
                await self.triggers.handle(delivery)
            elif is_notice(delivery.body):
                await self.notices.handle(delivery)
            else:
                await self.steps.handle(delivery)
            if self.unrecorded:  # (empty but for a store refusing dead letters: no hashing per delivery)
                self.unrecorded.recorded(delivery)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await delivery.requeue()
            raise
        except Exception as exc:
            with anyio.CancelScope(shield=True):
                if is_outage(exc):
                    await self._give_back(delivery, exc)
                    return
                if isinstance(exc, DeadLetterNotRecorded):
                    await self._back_off(delivery, exc)
                    return
                # A bug, not a handler failure (those are outcomes). One bad delivery
                # must not take the worker down: it is retried once, then kept as a
                # dead letter with the error, so it can be inspected and replayed.
                # Its traceback is logged once, not at every redelivery.
                if self.unrecorded.failing(delivery):
                    log.warning("failed again to process a delivery from %s: %s", delivery.queue, _brief(exc))
                else:
                    log.exception("failed to process a delivery from %s", delivery.queue)
                await self._set_aside(delivery, f"internal error: {type(exc).__name__}: {exc}")

    async def _give_back(self, delivery: Delivery, exc: BaseException) -> None:
        """The database or broker is away: hold the slot a moment (which slows
        intake) and give the message back; an outage never counts towards
        dead-lettering it."""
        log.warning("could not process a delivery from %s (%s); requeued", delivery.queue, _first_line(exc))
        await anyio.sleep(self.settings.retry_pause)
        try:
            await delivery.requeue()
        except Exception:
            log.exception("could not give a delivery back to %s", delivery.queue)

    async def _back_off(self, delivery: Delivery, exc: BaseException) -> None:
        """The dead letter of ``delivery`` could not be written: give it back after
        a pause that doubles each time (bounded), with one line of log, so that
        it neither spins nor floods the log; the traceback only at debug level."""
        pause = self.unrecorded.failed(delivery)
        log.warning(
            "could not keep a delivery from %s as a dead letter (%s); it goes back in %gs",
            delivery.queue,
            _brief(exc),
            pause,
        )
        log.debug("the dead letter could not be written", exc_info=exc)
        # Called with cancellation shielded: a stopping worker cuts the pause short.
        with anyio.move_on_after(pause):
            await self._stopping.wait()
        try:
            await delivery.requeue()
        except Exception:
            log.exception("could not give a delivery back to %s", delivery.queue)

    async def _set_aside(self, delivery: Delivery, reason: str) -> None:
        """Retry a delivery that hit a bug once, then keep it as a dead letter.

        This is the last line of defence of one delivery, so it never raises: if
        the dead letter cannot be written (the database is down too), the
        delivery goes back to the queue; if even that fails, the broker gives it
        back when the channel closes.
        """
        try:
            if self.unrecorded.failing(delivery) or self.bugs.second_time(delivery):
                await dead_letter_message(
                    delivery, reason, self.store, self.broker, self.clock, self.engine.observer
                )
                self.unrecorded.recorded(delivery)
                return
            await anyio.sleep(self.settings.retry_pause)
        except Exception as exc:
            await self._back_off(delivery, exc)
            return
        try:
            await delivery.requeue()
        except Exception:
            log.exception("could not give a delivery back to %s", delivery.queue)
