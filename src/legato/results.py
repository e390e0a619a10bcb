"""Waiting for runs without polling: one watch per client, woken by the store.

A waiter registers its interest *before* it reads the run, so a change that
lands between the read and the wait still wakes it. Each waiter then reads the
run once per status change of that run (Postgres: the NOTIFY of migration
0014's trigger), not once per poll interval: a thousand waiters cost the
database a thousand reads when they start and one more each when their run
changes. Polling stays as the fallback, every ``fallback`` seconds, in case a
notification was lost (the listener reconnecting after an outage); a store
that cannot tell other processes' changes (SQLite) is polled as before.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import anyio

from legato.errors import StoreError
from legato.machine.run import RunStatus
from legato.store.ports import RunWatch

log = logging.getLogger("legato.client")


class Interest:
    """One waiter's wake-up: set when its run changes status."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, fallback: float) -> None:
        """Until the run changes (since the last wait), or ``fallback`` seconds."""
        with anyio.move_on_after(fallback):
            await self._event.wait()
        if self._event.is_set():
            self._event = anyio.Event()  # anyio events cannot be cleared


class RunWaiters:
    """The runs someone in this process waits for, woken by their status changes."""

    def __init__(self, watch: RunWatch) -> None:
        self.watch = watch
        self._waiting: dict[str, list[Interest]] = {}
        self._subscribed = False

    async def subscribe(self) -> bool:
        """Listen, if not yet (and again after an outage); False when the store cannot."""
        try:
            await self.watch.subscribe_runs(self._changed)
        except StoreError as exc:
            log.warning("cannot listen for run changes, polling instead: %s", exc)
            return False
        self._subscribed = True
        return True

    async def close(self) -> None:
        if self._subscribed:
            await self.watch.unsubscribe_runs(self._changed)
            self._subscribed = False

    @contextlib.contextmanager
    def interest(self, run_id: str) -> Iterator[Interest]:
        interest = Interest()
        waiting = self._waiting.setdefault(run_id, [])
        waiting.append(interest)
        try:
            yield interest
        finally:
            waiting.remove(interest)
            if not waiting:
                del self._waiting[run_id]

    def _changed(self, run_id: str, _status: RunStatus) -> None:
        for interest in self._waiting.get(run_id, ()):
            interest.wake()
