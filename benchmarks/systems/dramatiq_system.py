"""Dramatiq on RabbitMQ (see benchmarks/peers/dramatiq_app.py)."""

from __future__ import annotations

from benchmarks.peers import dramatiq_app
from benchmarks.settings import db_pool, worker_env
from benchmarks.systems.base import PYTHON, Guarantees
from benchmarks.systems.peer_base import RabbitPeer


class DramatiqSystem(RabbitPeer):
    name = "dramatiq"
    queues = (dramatiq_app.QUEUE, f"{dramatiq_app.QUEUE}.DQ", f"{dramatiq_app.QUEUE}.XQ")
    guarantees = Guarantees(
        durable_state="no: a pipeline's progress lives in its messages; the join counted in Postgres",
        acked_after="the actor returns; the next pipeline message is confirmed first",
        how="pipeline() for the chain; group() + a Postgres join counter (group callbacks need Redis)",
    )

    def __init__(self) -> None:
        super().__init__(dramatiq_app.send)

    def worker_commands(self, processes: int) -> list[list[str]]:
        return [
            [
                PYTHON, "-m", "dramatiq", "benchmarks.peers.dramatiq_app",
                "--processes", str(processes), "--threads", str(db_pool(processes)),
                "--queues", dramatiq_app.QUEUE,
            ]
        ]  # fmt: skip

    def worker_env(self, processes: int) -> dict[str, str]:
        return worker_env(BENCH_POOL=str(db_pool(processes)))
