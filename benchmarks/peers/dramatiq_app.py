"""The Dramatiq side: ``dramatiq benchmarks.peers.dramatiq_app``.

RabbitMQ broker with publisher confirms (``confirm_delivery``); Dramatiq's
messages are persistent and acked after the actor returns. A chain is a
``pipeline`` (the next message is enqueued before the current one is acked).
Dramatiq's own fan-in (``group.add_completion_callback``) needs Redis or
Memcached, so the join is counted in Postgres instead, which is also durable.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from benchmarks.peers import record
from benchmarks.settings import BROKER_URL
from benchmarks.workloads import Shape

SYSTEM = "dramatiq"
QUEUE = "bench_dramatiq"
BRANCHES = 4

broker = RabbitmqBroker(url=BROKER_URL, confirm_delivery=True)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=3)
def step(run_id: str) -> None:
    return None


@dramatiq.actor(queue_name=QUEUE, max_retries=3)
def last(run_id: str, created_at: float) -> None:
    record.finished(SYSTEM, run_id, created_at)


@dramatiq.actor(queue_name=QUEUE, max_retries=3)
def branch(run_id: str, index: int, created_at: float, branches: int = BRANCHES) -> None:
    if record.join_arrive(run_id, index, branches):
        last.send(run_id, created_at)


def send(shape: Shape, run_id: str, created_at: float) -> None:
    if shape is Shape.SINGLE:
        last.send(run_id, created_at)
    elif shape is Shape.CHAIN:
        dramatiq.pipeline(
            [
                step.message(run_id),
                step.message_with_options(args=(run_id,), pipe_ignore=True),
                last.message_with_options(args=(run_id, created_at), pipe_ignore=True),
            ]
        ).run()  # type: ignore[no-untyped-call]
    else:
        width = BRANCHES if shape is Shape.FANOUT else shape.steps
        fan_out = dramatiq.group([branch.message(run_id, i, created_at, width) for i in range(width)])  # type: ignore[no-untyped-call]
        fan_out.run()  # type: ignore[no-untyped-call]
