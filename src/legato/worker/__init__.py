"""The worker runtime: consume, run steps concurrently, fire timers, relay the outbox."""

from legato.worker.runtime import Worker, WorkerSettings

__all__ = ["Worker", "WorkerSettings"]
