"""Running one chaos session: servers of its own, three workers, events, faults, a verdict."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import asyncpg
import orjson

from legato.broker.base import Topology
from legato.broker.rabbitmq import RabbitMQBroker
from legato.errors import BrokerError
from legato.machine.run import TERMINAL_STATUSES
from tests.chaos.app import EVENT
from tests.chaos.faults import EVERY_FAULT, Fault, Injector, schedule
from tests.chaos.verdict import Verdict, judge
from tests.servers import OwnPostgres, OwnRabbitMQ

log = logging.getLogger("chaos")

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = NAMESPACE = "chaos"


@dataclass(frozen=True)
class Plan:
    events: int = 10_000
    rate: float = 40.0
    """Events published per second."""
    workers: int = 3
    republish: float = 0.05
    """Share of events published a second time with the same id."""
    doomed_every: int = 20
    """Every n-th run fails for good at its last step and is compensated."""
    faults: tuple[Fault, ...] = EVERY_FAULT
    rounds: int = 0
    """Passes over ``faults``; 0: as many as fit while events are published."""
    kills_between: bool = True
    """Also kill a worker after each other fault."""
    gap: tuple[float, float] = (4.0, 8.0)
    outage: float = 20.0
    storm: float = 20.0
    drain: float = 300.0
    seed: int = 1


SCENARIOS = {
    # What `make chaos` runs: every fault, over and over, while 10,000 events go in.
    "all": Plan(),
    # The short one in the test suite: a few hundred events, every fault once.
    "short": Plan(
        events=300, rate=4.0, rounds=1, kills_between=False, gap=(1.5, 3.0), storm=10.0, drain=180.0
    ),
    # Issue 15's acceptance: a session killed every 0.5-2 s while 1,500 events go in.
    "storm": Plan(events=1500, rate=15.0, faults=(Fault.SESSION_STORM,)),
}


@dataclass
class Cluster:
    """The worker processes; any exit the runner did not cause is counted."""

    plan: Plan
    env: dict[str, str]
    folder: Path
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[int, Path] = field(default_factory=dict)
    expected: set[int] = field(default_factory=set)
    exited: list[str] = field(default_factory=list)
    started = 0

    def spawn(self, slot: int) -> None:
        self.started += 1
        path = self.folder / f"worker-{slot}-{self.started}.log"
        self.logs[slot] = path
        with path.open("ab") as output:
            self.processes[slot] = subprocess.Popen(
                [sys.executable, "-m", "legato", "worker", "tests.chaos.app:app"],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    async def watch(self) -> None:
        while True:
            for slot, process in list(self.processes.items()):
                code = process.poll()
                if code is not None and process.pid not in self.expected:
                    self.exited.append(f"pid {process.pid} exited {code} (slot {slot})")
                    self.spawn(slot)
            await anyio.sleep(0.5)

    async def kill_one(self, rng: random.Random) -> None:
        slot = rng.choice(sorted(self.processes))
        process = self.processes[slot]
        self.expected.add(process.pid)
        process.kill()
        await anyio.to_thread.run_sync(process.wait)
        self.spawn(slot)

    def serving(self, slot: int) -> bool:
        """Whether the worker in ``slot`` has started (a fresh one may still be
        importing, and SIGTERM before its handler is set ends it as a signal does)."""
        return "worker started" in self.logs[slot].read_text(errors="replace")

    async def until_serving(self, slots: list[int], timeout: float = 120.0) -> None:
        with anyio.move_on_after(timeout):
            while not all(self.serving(s) or self.processes[s].poll() is not None for s in slots):
                await anyio.sleep(0.2)

    async def stop_one(self, rng: random.Random) -> None:
        """Stop a serving worker gracefully: that is the fault worth making."""
        await self.until_serving(sorted(self.processes))
        slot = rng.choice(sorted(self.processes))
        process = self.processes[slot]
        self.expected.add(process.pid)
        code = await self._stop(process)
        if code != 0:
            self.exited.append(f"pid {process.pid}: graceful stop exited {code}")
        self.spawn(slot)

    async def _stop(self, process: subprocess.Popen[bytes]) -> int:
        process.send_signal(signal.SIGTERM)
        try:
            return await anyio.to_thread.run_sync(process.wait, 60)
        except subprocess.TimeoutExpired:
            process.kill()
            return await anyio.to_thread.run_sync(process.wait)

    async def stop_all(self) -> None:
        await self.until_serving(sorted(self.processes))
        for process in self.processes.values():
            self.expected.add(process.pid)
        for process in self.processes.values():
            code = await self._stop(process)
            if code != 0:
                self.exited.append(f"pid {process.pid}: final graceful stop exited {code}")


class Publisher:
    def __init__(self, plan: Plan, url: str, rng: random.Random) -> None:
        self.plan = plan
        self.broker = RabbitMQBroker(url, Topology(NAMESPACE))
        self.rng = rng
        self.published: set[str] = set()
        self.doomed: set[str] = set()
        self.republished = 0
        self.done = anyio.Event()

    async def run(self) -> None:
        await self.broker.connect()
        try:
            again: list[tuple[int, str, bytes]] = []
            pace = 1.0 / self.plan.rate
            for i in range(self.plan.events):
                key = f"ev-{i}"
                doomed = i % self.plan.doomed_every == 7
                body = orjson.dumps({"i": i, "doomed": doomed})
                await self._publish(key, body)
                self.published.add(key)
                if doomed:
                    self.doomed.add(key)
                if self.rng.random() < self.plan.republish:
                    again.append((i + self.rng.randint(5, 200), key, body))
                for item in [a for a in again if a[0] <= i]:
                    again.remove(item)
                    await self._publish(item[1], item[2])
                    self.republished += 1
                await anyio.sleep(pace)
            for _, key, body in again:
                await self._publish(key, body)
                self.republished += 1
        finally:
            self.done.set()
            await self.broker.close()

    async def _publish(self, key: str, body: bytes) -> None:
        while True:
            try:
                await self.broker.publish_event(EVENT, body, message_id=key)
                return
            except BrokerError:
                await anyio.sleep(0.5)  # the broker is restarting: the publisher waits too


async def _drain(dsn: str, publisher: Publisher, timeout: float) -> float:
    """Wait until every event has a run and every run has finished; return how long it took."""
    started = time.monotonic()
    with anyio.move_on_after(timeout):
        while True:
            try:
                conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
                try:
                    row = await conn.fetchrow(
                        "SELECT count(*), count(*) FILTER (WHERE status <> ALL($1::text[])) FROM runs",
                        [status.value for status in TERMINAL_STATUSES],
                    )
                    assert row is not None
                    total, open_ = row[0], row[1]
                finally:
                    await conn.close()
                if total >= len(publisher.published) and open_ == 0:
                    break
            except (OSError, asyncpg.PostgresError):
                pass
            await anyio.sleep(1.0)
    return time.monotonic() - started


async def _faults(plan: Plan, injector: Injector, publisher: Publisher, rng: random.Random) -> None:
    if plan.faults == (Fault.SESSION_STORM,) and plan.rounds == 0:
        # The storm scenario: one storm for as long as events are published.
        async with anyio.create_task_group() as group:
            group.start_soon(injector.inject, Fault.SESSION_STORM)
            await publisher.done.wait()
            injector.storm = 0
            group.cancel_scope.cancel()
        injector.faults.windows[-1].end = time.time()
        return
    passes = 0
    while True:
        for fault in schedule(plan.faults, rng, plan.kills_between):
            await anyio.sleep(rng.uniform(*plan.gap))
            await injector.inject(fault)
        passes += 1
        if (plan.rounds and passes >= plan.rounds) or (not plan.rounds and publisher.done.is_set()):
            return


async def run(plan: Plan, folder: Path | None = None) -> Verdict:
    folder = folder or Path(tempfile.mkdtemp(prefix="legato-chaos-"))
    (folder / "records").mkdir(parents=True, exist_ok=True)
    rng = random.Random(plan.seed)
    postgres, rabbitmq = OwnPostgres(), OwnRabbitMQ()
    cluster: Cluster | None = None
    began = time.monotonic()
    try:
        await anyio.to_thread.run_sync(postgres.start)
        await anyio.to_thread.run_sync(rabbitmq.start)
        env = {
            **os.environ,
            "LEGATO_DATABASE_URL": postgres.dsn,
            "LEGATO_DATABASE_SCHEMA": SCHEMA,
            "LEGATO_BROKER_URL": rabbitmq.url,
            "LEGATO_NAMESPACE": NAMESPACE,
            "LEGATO_POOL_SIZE": "6",
            "LEGATO_CONCURRENCY": "32",
            "LEGATO_GRACE": "10",
            "LEGATO_STARTUP_TIMEOUT": "120",
            "LEGATO_LOG_LEVEL": "info",
            "CHAOS_RECORDS": str(folder / "records"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        cluster = Cluster(plan, env, folder)
        for slot in range(plan.workers):
            cluster.spawn(slot)
        publisher = Publisher(plan, rabbitmq.url, rng)
        injector = Injector(
            postgres,
            rabbitmq,
            lambda: cluster.kill_one(rng),
            lambda: cluster.stop_one(rng),
            f"legato {SCHEMA}",
            rng,
            outage=plan.outage,
            storm=plan.storm,
        )
        async with anyio.create_task_group() as group:
            group.start_soon(cluster.watch)
            async with anyio.create_task_group() as work:
                work.start_soon(publisher.run)
                work.start_soon(_faults, plan, injector, publisher, rng)
            drained = await _drain(postgres.dsn, publisher, plan.drain)
            await cluster.stop_all()
            group.cancel_scope.cancel()
        verdict = await judge(
            postgres.dsn, SCHEMA, publisher.published, publisher.doomed, folder / "records", injector.faults
        )
        verdict.add("workers that exited on their own", cluster.exited)
        verdict.figures = {
            "events published": len(publisher.published),
            "re-published ids": publisher.republished,
            **verdict.figures,
            **{f"fault: {fault.value}": n for fault, n in injector.faults.counts().items() if n},
            "sessions terminated": injector.faults.sessions_killed,
            "workers started": cluster.started,
            "drain after publishing and faults (s)": round(drained, 1),
            "wall time (s)": round(time.monotonic() - began, 1),
            "logs": str(folder),
        }
        return verdict
    finally:
        if cluster is not None:
            for process in cluster.processes.values():
                if process.poll() is None:
                    process.kill()
        await anyio.to_thread.run_sync(rabbitmq.destroy)
        await anyio.to_thread.run_sync(postgres.destroy)
