"""Live updates: one watcher polls a cheap change stamp; pages listen on a stream.

However many pages are open, the database sees one small query per interval,
and only while someone listens. A page refetches what it shows when the stamp
moves.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict

import anyio

from legato.errors import StoreError
from legato.store.insights import Insights, Stamp

log = logging.getLogger("legato.dashboard")


class Watcher:
    def __init__(self, insights: Insights, interval: float = 1.0) -> None:
        self.insights = insights
        self.interval = interval
        self.latest: Stamp | None = None
        self._listeners: set[asyncio.Queue[Stamp]] = set()
        self._someone = anyio.Event()

    def subscribe(self) -> asyncio.Queue[Stamp]:
        queue: asyncio.Queue[Stamp] = asyncio.Queue(maxsize=1)
        self._listeners.add(queue)
        self._someone.set()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Stamp]) -> None:
        self._listeners.discard(queue)

    async def run(self) -> None:
        while True:
            if not self._listeners:
                self._someone = anyio.Event()
                await self._someone.wait()
            try:
                stamp = await self.insights.stamp()
            except StoreError as exc:
                log.warning("live updates paused: %s", exc)
            else:
                if stamp != self.latest:
                    self.latest = stamp
                    for queue in list(self._listeners):
                        if queue.full():
                            queue.get_nowait()  # a slow page only needs the newest stamp
                        queue.put_nowait(stamp)
            await anyio.sleep(self.interval)


def event(stamp: Stamp) -> bytes:
    import orjson

    return b"event: change\ndata: " + orjson.dumps(asdict(stamp)) + b"\n\n"
