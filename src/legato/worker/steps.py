"""Running one task message: load, check, execute, record, ack."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from types import MappingProxyType

import anyio

from legato.app import App, UnknownWorkflow
from legato.broker.base import Broker, Delivery
from legato.clock import Clock
from legato.context import StepContext
from legato.engine import Engine, Local
from legato.flow.admission import FREE, Admission
from legato.interruption import Interruption
from legato.machine.commands import Rejection
from legato.machine.events import StepDeferred, StepFailed, StepHeldBack, StepSucceeded, Waited
from legato.machine.map import item_data
from legato.machine.run import Run, Token
from legato.messages import MalformedMessage, TaskMessage
from legato.observe import RejectedInput
from legato.store.base import LeaseEnd
from legato.store.ports import LeaseStore
from legato.worker.eager import LocalDelivery
from legato.worker.execute import INTERRUPT_GRACE, StepOutcome, invoke
from legato.worker.handover import Handover
from legato.worker.inflight import InFlight
from legato.worker.leases import StepLease, holder_id
from legato.worker.middleware import Middleware, StepCall, compose
from legato.worker.poison import dead_letter_message

log = logging.getLogger("legato.worker")


class StepRunner:
    def __init__(
        self,
        app: App,
        engine: Engine,
        broker: Broker,
        clock: Clock,
        threads: anyio.CapacityLimiter,
        middleware: Sequence[Middleware] = (),
        admission: Admission | None = None,
        local: Local | None = None,
        inflight: InFlight | None = None,
        interrupt_grace: float = INTERRUPT_GRACE,
        leases: LeaseStore | None = None,
        handover: Handover | None = None,
    ) -> None:
        self.handover = handover
        self.app = app
        self.engine = engine
        self.store = engine.store
        self.broker = broker
        self.clock = clock
        self.threads = threads
        self.admission = admission
        self.local = local
        self.inflight = inflight or InFlight(clock)
        self.interrupt_grace = interrupt_grace
        self.leases = leases
        self.holder = holder_id()
        self._call = compose(middleware, self._invoke)

    async def _invoke(self, call: StepCall) -> StepOutcome:
        return await invoke(
            call.handler,
            call.ctx,
            call.task.timeout,
            self.threads,
            self.clock,
            call.task.output_key,
            self.interrupt_grace,
        )

    async def handle(self, delivery: Delivery) -> None:
        try:
            message = TaskMessage.decode(delivery.body)
        except MalformedMessage as exc:
            await self._poison(delivery, str(exc))
            return
        # A step made here (eager dispatch) brings the run it was made with.
        run = delivery.fresh_run(self.clock.monotonic()) if isinstance(delivery, LocalDelivery) else None
        if (
            run is None
            or run.id != message.run_id
            or not run.expects(message.seq, message.attempt, message.kind)
        ):
            run = await self.store.load_run(message.run_id)
        if run is None:
            await self._poison(delivery, f"task for unknown run {message.run_id}")
            return
        try:
            workflow = self.app.workflow(run.workflow, run.workflow_version)
        except UnknownWorkflow as exc:
            # A newer version of the app (a rolling deploy) has it: one of its workers takes it.
            if self.handover is None or not await self.handover.pass_over(delivery, str(exc)):
                await self._poison(delivery, f"{exc} (is this worker running an older deploy?)")
            return
        if not run.expects(message.seq, message.attempt, message.kind):
            # A duplicate or stale delivery: the step attempt is over already.
            reason = f"stale task: step #{message.seq} attempt {message.attempt} is not running"
            await self.store.record_rejection(run, "TaskMessage", reason, self.clock.now())
            self.engine.observer.rejected(RejectedInput(run, "TaskMessage", reason))
            await delivery.ack()
            return
        if run.paused is not None:
            held = await self._hold(delivery, run, message)
            if held is None:
                return
            run = held
        token = run.token(message.seq)
        assert token is not None
        task = workflow.task(token.state)
        # A map item's step sees its item, not the run's data (and its limits' keys come from it).
        item = item_data(workflow, run, token)
        data = run.data if item is None else item
        stop = Interruption(token.kind)
        ctx = StepContext(
            run_id=run.id,
            workflow=run.workflow,
            workflow_version=run.workflow_version,
            state=token.state,
            seq=token.seq,
            attempt=token.attempt,
            kind=token.kind,
            # Read-only views, no copies: a run is never changed once built (a
            # transition makes a new one), so the handler sees a stable snapshot.
            data=MappingProxyType(data),
            input=MappingProxyType(run.input),
            priority=run.priority,
            interruption=stop,
        )
        call = StepCall(
            ctx,
            run,
            workflow,
            task,
            self.app.handler(workflow, token.state, token.kind),
            dict(delivery.headers),
        )
        # Flow control, just before the handler: a step that must wait for a
        # limit is parked (unacked, holding no slot) and comes back later.
        permit = await self.admission.admit(delivery, task, data) if self.admission else FREE
        if permit is None:
            return
        lease = None
        if task.heartbeat_timeout is not None and self.leases is not None:
            lease = await self._lease(delivery, run, token, task.heartbeat_timeout, stop)
            if lease is None:
                if permit.holds:
                    await permit.release()
                return
            call = replace(call, ctx=replace(ctx, lease=lease, heartbeat_details=lease.previous))
        try:
            outcome = await self._attempt(call, lease, stop)
        finally:
            if permit.holds:
                with anyio.CancelScope(shield=True):
                    await permit.release()
        event = _event(token, outcome, permit.waited)
        # The outcome must be recorded even if shutdown cancels us now: the
        # handler's effects happened, and recording is quick.
        with anyio.CancelScope(shield=True):
            await self.engine.apply(run, event, local=self.local)
            if lease is not None:
                await lease.release(LeaseEnd.DONE if outcome.ok else LeaseEnd.FAILED)
            await delivery.ack()

    async def _attempt(self, call: StepCall, lease: StepLease | None, stop: Interruption) -> StepOutcome:
        """The attempt, registered as in flight so that its run's end reaches it."""
        run_id = call.ctx.run_id
        remembered = self.inflight.add(run_id, stop)
        try:
            if remembered is not None:
                # The run ended after this step read it -- or so says a notification
                # that may be older than a resume: read the run again to know.
                current = await self.store.load_run(run_id)
                self.inflight.confirm(run_id, stop, remembered, current.status if current else None)
            return await self._run(call, lease)
        finally:
            self.inflight.remove(run_id, stop)

    async def _run(self, call: StepCall, lease: StepLease | None) -> StepOutcome:
        if lease is None:
            return await self._call(call)
        try:
            async with lease.kept():
                return await self._call(call)
        except anyio.get_cancelled_exc_class():
            # Shutdown: the delivery is settled already, so the lease runs out
            # now and the heartbeat timer dispatches the step again at once.
            await lease.release(LeaseEnd.ABANDONED)
            raise

    async def _lease(
        self, delivery: Delivery, run: Run, token: Token, timeout: float, stop: Interruption
    ) -> StepLease | None:
        """Take the step's lease, then settle its delivery; None if another worker holds it."""
        assert self.leases is not None
        lease = StepLease(
            self.leases, self.clock, (run.id, token.seq, token.attempt), self.holder, timeout, stop
        )
        if not await lease.acquire():
            reason = (
                f"step #{token.seq} attempt {token.attempt} is running in another worker (it holds the lease)"
            )
            await self.store.record_rejection(run, "TaskMessage", reason, self.clock.now())
            self.engine.observer.rejected(RejectedInput(run, "TaskMessage", reason))
            await delivery.ack()
            return None
        # From here the lease, not the delivery, says the step is being run.
        await delivery.ack()
        return lease

    async def _hold(self, delivery: Delivery, run: Run, message: TaskMessage) -> Run | None:
        """The run is paused: hold the step instead of starting it (its resume
        dispatches it again). The run to go on with if it was resumed meanwhile,
        else None (the delivery is settled)."""
        event = StepHeldBack(message.seq, message.attempt, message.kind)
        outcome = await self.engine.apply(run.id, event, local=self.local)
        if not isinstance(outcome, Rejection):
            await delivery.ack()
            return None
        fresh = await self.store.load_run(run.id)
        if fresh is None or not fresh.expects(message.seq, message.attempt, message.kind):
            await delivery.ack()  # held or moved on meanwhile: nothing to run
            return None
        return fresh

    async def _poison(self, delivery: Delivery, reason: str) -> None:
        await dead_letter_message(delivery, reason, self.store, self.broker, self.clock, self.engine.observer)


def _event(token: Token, outcome: StepOutcome, waited: Waited) -> StepSucceeded | StepFailed | StepDeferred:
    """The attempt's outcome as the event the run is told."""
    if outcome.deferred is not None:
        return StepDeferred(
            token.seq,
            token.attempt,
            outcome.deferred.digest,
            outcome.deferred.timeout,
            token.kind,
            outcome.started_at,
            outcome.finished_at,
            waited,
        )
    if outcome.ok:
        return StepSucceeded(
            token.seq,
            token.attempt,
            outcome.output,
            token.kind,
            outcome.started_at,
            outcome.finished_at,
            waited,
        )
    assert outcome.error is not None
    return StepFailed(
        token.seq,
        token.attempt,
        outcome.error,
        token.kind,
        outcome.started_at,
        outcome.finished_at,
        outcome.retry_after,
        outcome.non_retryable,
        waited,
    )
