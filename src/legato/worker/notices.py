"""Taking a notice between a parent run and its child (legato/notices.py).

A notice is applied through the engine like any event, so it is recorded once
whatever the redeliveries: a parent accepts a child's end only while the step
waiting for that child is still waiting, and a child takes a cancel or
compensation request only in a status where it means something. The delivery
is acked after that commit; a duplicate finds the work done and is acked.
"""

from __future__ import annotations

import logging

from legato.broker.base import Delivery
from legato.clock import Clock
from legato.engine import Engine, Local
from legato.machine.events import CancelRequested, ChildEnded, CompensateRequested
from legato.machine.run import ParentLink, Run, RunStatus, StepKind
from legato.messages import MalformedMessage
from legato.notices import Notice, NoticeKind
from legato.worker.poison import dead_letter_message

log = logging.getLogger("legato.worker")


class Notices:
    def __init__(self, engine: Engine, clock: Clock, local: Local | None = None) -> None:
        self.engine = engine
        self.store = engine.store
        self.clock = clock
        self.local = local

    async def handle(self, delivery: Delivery) -> None:
        try:
            notice = Notice.decode(delivery.body)
        except MalformedMessage as exc:
            assert self.engine.broker is not None
            await dead_letter_message(
                delivery, str(exc), self.store, self.engine.broker, self.clock, self.engine.observer
            )
            return
        match notice.kind:
            case NoticeKind.CHILD_ENDED:
                await self._child_ended(notice)
            case NoticeKind.CANCEL_CHILD:
                await self._cancel_child(notice)
            case NoticeKind.COMPENSATE_CHILD:
                await self._compensate_child(notice)
        await delivery.ack()

    async def _child_ended(self, notice: Notice) -> None:
        child = await self.store.load_run(notice.source)
        if child is None or not child.finished:
            # Resumed since (an operator's retry): it reports again when it ends.
            return
        await self._tell_parent(notice.run_id, notice.seq, notice.attempt, notice.step_kind, child)

    async def _tell_parent(self, parent_id: str, seq: int, attempt: int, kind: StepKind, child: Run) -> None:
        parent = await self.store.load_run(parent_id)
        if parent is None or parent.finished:
            return  # the parent ended first (and let go of the child)
        event = ChildEnded(seq, attempt, child.id, child.status, dict(child.data), child.error, kind)
        await self.engine.apply(parent, event, local=self.local)

    async def _cancel_child(self, notice: Notice) -> None:
        child = await self.store.load_run(notice.run_id)
        if child is None or child.finished:
            return
        reason = notice.reason or f"its parent run {notice.source} was cancelled"
        event = CancelRequested(
            actor=f"parent:{notice.source}", compensate=not child.compensating, reason=reason
        )
        await self.engine.apply(child, event, local=self.local)

    async def _compensate_child(self, notice: Notice) -> None:
        child = await self.store.load_run(notice.run_id)
        link = ParentLink(notice.source, notice.seq, notice.attempt, StepKind.COMPENSATION)
        if child is None:
            log.warning("child run %s to compensate is gone (retention?)", notice.run_id)
            return
        if child.status is RunStatus.SUCCEEDED:
            await self.engine.apply(child, CompensateRequested(link), local=self.local)
            return
        if child.finished:
            # Nothing to ask the child: its end is the compensation's outcome.
            await self._tell_parent(link.run_id, link.seq, link.attempt, link.kind, child)
