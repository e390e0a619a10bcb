"""The Celery side: ``celery -A benchmarks.peers.celery_app worker``.

Configured for durability, as the issue asks: RabbitMQ broker with publisher
confirms and persistent messages, ``acks_late`` (a task is acknowledged after
it returns) and ``task_reject_on_worker_lost`` (a task whose worker dies goes
back to the queue). A chain's next message is published before the current
one is acked. Chords need a result backend; the durable one at hand is
Postgres (SQLAlchemy), whose join is polled by Celery's ``chord_unlock`` task.
"""

from __future__ import annotations

import os

from celery import Celery, chain, chord

from benchmarks.peers import record
from benchmarks.settings import BROKER_URL, DATABASE_URL
from benchmarks.workloads import Shape

SYSTEM = "celery"
QUEUE = "bench.celery"
RESULTS_SCHEMA = "bench_celery"

app = Celery(
    "bench",
    broker=BROKER_URL,
    backend="db+" + DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1),
)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_default_delivery_mode="persistent",
    task_default_queue=QUEUE,
    broker_transport_options={"confirm_publish": True},
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    database_table_schemas={"task": RESULTS_SCHEMA, "group": RESULTS_SCHEMA},
    database_engine_options={"pool_size": int(os.environ.get("BENCH_POOL", "4")), "max_overflow": 0},
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "4")),
    result_expires=None,
)


@app.task(name="bench.step")
def step(run_id: str) -> None:
    """A no-op step of a chain."""


@app.task(name="bench.branch", ignore_result=False)
def branch(run_id: str) -> None:
    """A chord header task: its result is stored, since the join waits on it."""


@app.task(name="bench.last")
def last(run_id: str, created_at: float) -> None:
    record.finished(SYSTEM, run_id, created_at)


def send(shape: Shape, run_id: str, created_at: float) -> None:
    """Start one run, written as Celery's docs suggest: a chain, or a chord."""
    if shape is Shape.SINGLE:
        last.apply_async((run_id, created_at))
    elif shape is Shape.CHAIN:
        chain(step.si(run_id), step.si(run_id), last.si(run_id, created_at)).apply_async()
    else:
        width = 4 if shape is Shape.FANOUT else shape.steps
        chord([branch.si(run_id) for _ in range(width)], last.si(run_id, created_at)).apply_async()
