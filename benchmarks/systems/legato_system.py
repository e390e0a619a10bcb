"""legato, driven as a user drives it: worker processes, Client.start and events on RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence

import anyio
import orjson

from benchmarks import db
from benchmarks.apps import app
from benchmarks.metrics import Timing
from benchmarks.settings import BROKER_URL, DATABASE_URL, db_pool, worker_env
from benchmarks.systems.base import PYTHON, Guarantees, QueueProbe, delete_queues
from benchmarks.workloads import Mode, Shape
from legato import Client
from legato.broker.base import Topology
from legato.broker.rabbitmq import RabbitMQBroker
from legato.machine.vocabulary import STEP_FAILURES, STEP_OUTCOMES, HistoryKind
from legato.store.insights import kinds_sql
from legato.store.postgres import PostgresStore

# BENCH_LEGATO_SCHEMA lets two benchmark runs share the servers (each its own
# schema and RabbitMQ namespace): the machine is shared.
SCHEMA = os.environ.get("BENCH_LEGATO_SCHEMA", "legato_bench")
NAMESPACE = SCHEMA
ENQUEUE_CONCURRENCY = 16
EVENT_BATCH = 500


class LegatoSystem:
    name = "legato"
    guarantees = Guarantees(
        durable_state="yes: run row, history and outbox committed in Postgres per transition",
        acked_after="the transition commits; the next task is published with confirms (outbox)",
        how="`python -m legato worker benchmarks.apps:app` (`--processes N` for e); drain: Client.start, paced and stream: events",
    )

    def __init__(self) -> None:
        self.topology = Topology(NAMESPACE)
        self.probe = QueueProbe(self.topology.task_queue(1))
        self._client: Client | None = None
        self._store: PostgresStore | None = None

    def supports(self, shape: Shape, mode: Mode) -> bool:
        return True

    async def prepare(self) -> None:
        await self.reset()

    async def reset(self) -> None:
        await self._disconnect()
        await db.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
        topo = self.topology
        await delete_queues(
            *topo.task_queues,
            *topo.event_queues,
            topo.dead_letter_queue,
            exchanges=(
                topo.events_exchange,
                topo.routes_exchange,
                topo.unrouted_exchange,
                topo.tasks_exchange,
                topo.dead_letter_exchange,
            ),
        )
        await self._connect()
        assert self._store is not None
        await self._store.migrate()

    async def _connect(self) -> Client:
        if self._client is None:
            store = PostgresStore(DATABASE_URL, SCHEMA, min_size=1, max_size=8)
            broker = RabbitMQBroker(BROKER_URL, self.topology)
            await store.open()
            await broker.connect()
            self._client, self._store = Client(store, broker, app, actor="bench"), store
        return self._client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        store, self._store = self._store, None
        if store is not None:
            await store.close()
        if client is not None and client.broker is not None:
            await client.broker.close()

    async def enqueue(self, shape: Shape, runs: int) -> None:
        client = await self._connect()
        limiter = anyio.Semaphore(ENQUEUE_CONCURRENCY)

        async def start_one() -> None:
            async with limiter:
                await client.start(shape.value, shape.input)

        async with anyio.create_task_group() as group:
            for _ in range(runs):
                group.start_soon(start_one)

    async def publish(self, shape: Shape) -> None:
        client = await self._connect()
        body = {"published_at": time.time(), **shape.input}
        await client.publish_event(f"bench.{shape.value}", body, message_id=uuid.uuid4().hex)

    def worker_commands(self, processes: int) -> list[list[str]]:
        # Several processes as users run them: one supervisor (`--processes`).
        return [[PYTHON, "-m", "legato", "worker", "benchmarks.apps:app", "--processes", str(processes)]]

    def worker_env(self, processes: int) -> dict[str, str]:
        return worker_env(
            LEGATO_DATABASE_URL=DATABASE_URL,
            LEGATO_DATABASE_SCHEMA=SCHEMA,
            LEGATO_BROKER_URL=BROKER_URL,
            LEGATO_NAMESPACE=NAMESPACE,
            LEGATO_POOL_SIZE=str(db_pool(processes)),
            LEGATO_LOG_LEVEL="warning",
        )

    async def consuming(self) -> bool:
        return await self.probe.consuming()

    async def first_taken(self) -> float | None:
        return None

    async def progress(self) -> tuple[int, int]:
        return await db.fetch_counts(
            f"SELECT count(*) FILTER (WHERE status = 'succeeded'),"
            f" count(*) FILTER (WHERE status IN ('failed', 'compensated', 'cancelled', 'suspended'))"
            f' FROM "{SCHEMA}".runs'
        )

    async def timings(self) -> Sequence[Timing]:
        # A paced run's clock starts when its event was published, not when the
        # worker created the run from it.
        return await db.fetch_timings(
            "SELECT coalesce((input->>'published_at')::float8, extract(epoch FROM created_at)::float8),"
            f" extract(epoch FROM finished_at)::float8 FROM \"{SCHEMA}\".runs WHERE status = 'succeeded'"
        )

    async def close(self) -> None:
        await self._disconnect()
        await self.probe.close()


class LegatoEventsSystem(LegatoSystem):
    """legato with every run started by an event, drains included (``--systems legato-events``).

    The drain then includes what the trigger path costs: the worker creates
    each run from its event. A run's clock starts when its event is published.
    """

    name = "legato-events"

    def __init__(self) -> None:
        super().__init__()
        self.probe = QueueProbe(self.topology.app_queue)  # the benchmark's app has no name: "default"

    async def enqueue(self, shape: Shape, runs: int) -> None:
        client = await self._connect()
        broker = client.broker
        assert broker is not None
        for start in range(0, runs, EVENT_BATCH):
            # Pipelined: a batch of publishes on the wire before their confirms are awaited.
            await asyncio.gather(
                *(
                    broker.publish_event(
                        f"bench.{shape.value}",
                        orjson.dumps({"published_at": time.time(), **shape.input}),
                        message_id=uuid.uuid4().hex,
                    )
                    for _ in range(min(EVENT_BATCH, runs - start))
                )
            )


# History as one plain table, the layout before migration 0017 (with its foreign
# key to runs), plus the column today's code writes: the same statements hit it.
REJECTED = kinds_sql([HistoryKind.REJECTED])
FLAT_HISTORY = f"""
DROP TABLE history;
CREATE TABLE history (
    id             bigserial   PRIMARY KEY,
    run_id         uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    version        integer     NOT NULL,
    idx            smallint    NOT NULL,
    kind           text        NOT NULL,
    state          text,
    attempt        integer,
    at             timestamptz NOT NULL,
    actor          text,
    detail         jsonb       NOT NULL DEFAULT '{{}}',
    run_created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX history_transition_idx ON history (run_id, version, idx) WHERE kind <> {REJECTED};
CREATE INDEX history_run_idx ON history (run_id, id);
CREATE INDEX history_outcomes_idx ON history (at) WHERE kind IN ({kinds_sql(STEP_OUTCOMES)});
CREATE INDEX history_failures_idx ON history (at) WHERE kind IN ({kinds_sql(STEP_FAILURES)});
"""


class LegatoFlatSystem(LegatoSystem):
    """legato with history unpartitioned, as before migration 0017 (``--systems legato-flat``):
    beside ``legato`` in the same run, what partitioning costs the hot path."""

    name = "legato-flat"

    async def reset(self) -> None:
        await super().reset()
        await db.execute(f'SET search_path = "{SCHEMA}"; {FLAT_HISTORY}')
