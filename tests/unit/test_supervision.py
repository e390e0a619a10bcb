"""Side tasks ride out outages and die loudly on bugs."""

from __future__ import annotations

import pytest

from legato.errors import BrokerError, StoreError
from legato.worker.runtime import SideTaskDied, supervised


async def test_a_side_task_survives_database_and_broker_outages() -> None:
    failures: list[Exception] = [StoreError("db restarting"), BrokerError("connection reset")]
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)

    await supervised("relay", flaky, first_backoff=0.001)
    assert calls == 3


async def test_any_other_error_stops_the_worker_with_the_reason() -> None:
    async def broken() -> None:
        raise KeyError("token")

    with pytest.raises(SideTaskDied, match="worker stopped: its timers task died: KeyError: 'token'"):
        await supervised("timers", broken, first_backoff=0.001)


async def test_outages_met_by_concurrent_work_together_are_an_outage() -> None:
    # The timer poller fires due timers in a task group: a database restart fails
    # them all at once, and they arrive as one exception group.
    failures = [ExceptionGroup("timers", [StoreError("restart"), StoreError("restart")])]
    calls = 0

    async def firing() -> None:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)

    await supervised("timers", firing, first_backoff=0.001)
    assert calls == 2


async def test_a_bug_among_outages_still_stops_the_worker() -> None:
    async def firing() -> None:
        raise ExceptionGroup("timers", [StoreError("restart"), KeyError("token")])

    with pytest.raises(SideTaskDied, match="its timers task died"):
        await supervised("timers", firing, first_backoff=0.001)
