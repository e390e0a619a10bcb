"""The worker runtime: consume, run steps concurrently, fire timers, relay the outbox.

``legato.worker.runtime`` holds the worker itself; this package imports nothing,
so that the supervisor (``supervisor.py``) can be loaded without it.
"""
