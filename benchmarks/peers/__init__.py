"""The peers' side of the benchmark: apps and worker entry points for Celery, Dramatiq, DBOS
and the bare aio-pika + asyncpg loop. Each is written the way that system's docs suggest."""
