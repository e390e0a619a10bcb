"""legato's benchmarks: legato beside Celery, Dramatiq, DBOS and a bare aio-pika + asyncpg loop.

``python -m benchmarks`` (``make bench``; ``make bench-quick`` for the short
run) runs every system on the same workloads against the local RabbitMQ and
Postgres and prints one table. See benchmarks/README.md.
"""
