"""The faults the chaos suite injects, and the schedules it injects them on."""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import asyncpg

from tests.servers import OwnPostgres, OwnRabbitMQ

log = logging.getLogger("chaos")


class Fault(enum.StrEnum):
    WORKER_KILL = "worker SIGKILL + replacement"
    WORKER_STOP = "worker graceful stop + replacement"
    RABBITMQ_RESTART = "RabbitMQ restart"
    POSTGRES_FAST = "Postgres restart (fast)"
    POSTGRES_IMMEDIATE = "Postgres restart (immediate)"
    POSTGRES_KILL = "Postgres postmaster kill -9"
    POSTGRES_OUTAGE = "Postgres outage (20 s)"
    SESSION_STORM = "session-kill storm"


EVERY_FAULT = tuple(Fault)


@dataclass
class Window:
    fault: Fault
    start: float
    end: float = 0.0


@dataclass
class FaultLog:
    windows: list[Window] = field(default_factory=list)
    sessions_killed: int = 0

    def covers(self, at: float, margin: float) -> bool:
        """Whether ``at`` falls in (or within ``margin`` of) a fault."""
        return any(w.start - margin <= at <= (w.end or time.time()) + margin for w in self.windows)

    def counts(self) -> dict[Fault, int]:
        found = dict.fromkeys(Fault, 0)
        for window in self.windows:
            found[window.fault] += 1
        return found


@dataclass
class Injector:
    postgres: OwnPostgres
    rabbitmq: OwnRabbitMQ
    kill_worker: Callable[[], Awaitable[None]]
    stop_worker: Callable[[], Awaitable[None]]
    sessions_of: str
    """The application_name prefix of the workers' Postgres sessions."""
    rng: random.Random
    outage: float = 20.0
    storm: float = 20.0
    faults: FaultLog = field(default_factory=FaultLog)

    async def inject(self, fault: Fault) -> None:
        window = Window(fault, time.time())
        self.faults.windows.append(window)
        log.info("fault: %s", fault)
        try:
            await self._inject(fault)
        finally:
            window.end = time.time()

    async def _inject(self, fault: Fault) -> None:
        pg = self.postgres
        match fault:
            case Fault.WORKER_KILL:
                await self.kill_worker()
            case Fault.WORKER_STOP:
                await self.stop_worker()
            case Fault.RABBITMQ_RESTART:
                await anyio.to_thread.run_sync(self.rabbitmq.restart)
            case Fault.POSTGRES_FAST:
                await anyio.to_thread.run_sync(pg.stop, "fast")
                await anyio.to_thread.run_sync(pg.start)
            case Fault.POSTGRES_IMMEDIATE:
                await anyio.to_thread.run_sync(pg.stop, "immediate")
                await anyio.to_thread.run_sync(pg.start)
            case Fault.POSTGRES_KILL:
                pg.kill()
                await anyio.to_thread.run_sync(pg.start)
            case Fault.POSTGRES_OUTAGE:
                await anyio.to_thread.run_sync(pg.stop, "fast")
                await anyio.sleep(self.outage)
                await anyio.to_thread.run_sync(pg.start)
            case Fault.SESSION_STORM:
                await self.session_storm(self.storm)

    async def session_storm(self, duration: float) -> None:
        """``pg_terminate_backend`` of every worker session, every 0.5-2 s."""
        until = time.monotonic() + duration
        while time.monotonic() < until:
            await anyio.sleep(self.rng.uniform(0.5, 2.0))
            try:
                conn = await asyncpg.connect(self.postgres.dsn)
                try:
                    killed = await conn.fetch(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1",
                        f"{self.sessions_of}%",
                    )
                finally:
                    await conn.close()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("storm: %s", exc)
                continue
            self.faults.sessions_killed += len(killed)


def schedule(kinds: tuple[Fault, ...], rng: random.Random, kills_between: bool) -> list[Fault]:
    """One pass over ``kinds`` in a shuffled order; with ``kills_between``, a worker
    is also killed after each of the other faults (a kill every 10-20 s or so)."""
    order = list(kinds)
    rng.shuffle(order)
    plan: list[Fault] = []
    for fault in order:
        plan.append(fault)
        if kills_between and fault is not Fault.WORKER_KILL:
            plan.append(Fault.WORKER_KILL)
    return plan
