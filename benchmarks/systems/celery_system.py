"""Celery on RabbitMQ, configured for durability (see benchmarks/peers/celery_app.py)."""

from __future__ import annotations

from benchmarks import db
from benchmarks.peers import celery_app
from benchmarks.settings import db_pool, worker_env
from benchmarks.systems.base import PYTHON, Guarantees
from benchmarks.systems.peer_base import RabbitPeer


class CelerySystem(RabbitPeer):
    name = "celery"
    queues = (celery_app.QUEUE,)
    guarantees = Guarantees(
        durable_state="no: a chain's progress lives in its messages; chord results in Postgres",
        acked_after="the task returns (acks_late); the next chain message is confirmed first",
        how="chain() / chord() (Postgres result backend, chord_unlock polling); threads pool",
    )

    def __init__(self) -> None:
        super().__init__(celery_app.send)

    async def prepare(self) -> None:
        await super().prepare()
        await db.execute(f"CREATE SCHEMA IF NOT EXISTS {celery_app.RESULTS_SCHEMA}")

    async def reset(self) -> None:
        await super().reset()
        await db.execute(
            "DO $$ BEGIN"
            f" EXECUTE (SELECT 'TRUNCATE ' || string_agg(format('%I.%I', schemaname, tablename), ', ')"
            f" FROM pg_tables WHERE schemaname = '{celery_app.RESULTS_SCHEMA}');"
            " EXCEPTION WHEN null_value_not_allowed THEN NULL; END $$"
        )

    def worker_commands(self, processes: int) -> list[list[str]]:
        threads = str(db_pool(processes))
        return [
            [
                PYTHON, "-m", "celery", "-A", "benchmarks.peers.celery_app", "worker",
                "--pool", "threads", "--concurrency", threads, "-Q", celery_app.QUEUE,
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--loglevel", "WARNING", "-n", f"bench{index}@%h",
            ]
            for index in range(processes)
        ]  # fmt: skip

    def worker_env(self, processes: int) -> dict[str, str]:
        return worker_env(BENCH_POOL=str(db_pool(processes)))
