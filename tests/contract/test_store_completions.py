"""Completion tokens (:class:`~legato.store.ports.CompletionStore`), on every backend:
recorded with the transition that defers a step, settled with the one that ends
its wait, single-use, and exactly one of a completion and its timeout wins."""

from __future__ import annotations

import anyio
import pytest

from legato import App, RunStatus
from legato.clock import ManualClock
from legato.completion import CompleteLater, StepRef, step_of
from legato.engine import Engine
from legato.errors import CompletionTokenUsed, OperationRefused, UnknownCompletionToken
from legato.machine.commands import Decision, Rejection
from legato.machine.errors import ErrorInfo
from legato.machine.events import CancelRequested, StepDeferred, TimerFired
from legato.machine.run import Run
from legato.machine.vocabulary import CompletionOutcome, TimerPurpose
from legato.outside import settle_token
from legato.store.base import CompletionRecord, ConsumeTimer, DueTimer
from legato.store.ports import Store
from tests.contract.workflow import NOW, WF


async def deferred(store: Store, timeout: float | None = 60.0) -> tuple[Engine, str, CompleteLater]:
    """A run whose first step handed its completion to a token."""
    engine = Engine(App([WF]), store, None, ManualClock(NOW))
    started = await engine.start("contract", {"order": 1})
    later = CompleteLater(timeout)
    outcome = await engine.apply(started.run.id, StepDeferred(1, 1, later.digest, later.timeout))
    assert isinstance(outcome, Decision)
    return engine, started.run.id, later


async def test_a_token_is_recorded_by_digest_with_its_wait_and_settled_once(store: Store) -> None:
    engine, run_id, later = await deferred(store)
    record = await store.find_completion(later.digest)
    assert record is not None
    assert (record.run_id, record.seq, record.attempt, record.state) == (run_id, 1, 1, "a")
    assert record.expires_at == NOW + 60
    assert record.outcome is None
    # Only the digest is kept: the token itself finds nothing.
    assert await store.find_completion(later.token) is None

    run = await settle_token(engine, store, later.token, "cli:ops", output={"paid": True})
    assert run.data["paid"] is True
    assert run.current_states == ("b",)
    used = await store.find_completion(later.digest)
    assert used is not None
    assert (used.outcome, used.settled_by, used.settled_at) == (CompletionOutcome.COMPLETED, "cli:ops", NOW)
    with pytest.raises(
        CompletionTokenUsed, match=r"already used: step 'a' .* was completed at .* by cli:ops"
    ):
        await settle_token(engine, store, later.token, "cli:other", output={"paid": False})
    with pytest.raises(UnknownCompletionToken):
        await settle_token(engine, store, "lct_not-a-token", "cli:ops")


async def test_a_failed_token_follows_the_retry_policy(store: Store) -> None:
    engine, _, later = await deferred(store)

    run = await settle_token(engine, store, later.token, "http", error=ErrorInfo.of("Declined", "no"))
    [token] = run.tokens
    assert (token.state, token.phase.value, token.attempt) == ("a", "retry_wait", 2)
    used = await store.find_completion(later.digest)
    assert used is not None
    assert used.outcome is CompletionOutcome.FAILED


async def test_a_token_of_a_cancelled_run_is_refused(store: Store) -> None:
    engine, run_id, later = await deferred(store)
    await engine.apply(run_id, CancelRequested("ops"))
    with pytest.raises(OperationRefused, match="finished run takes no completions"):
        await settle_token(engine, store, later.token, "cli:ops")


async def race(
    store: Store, engine: Engine, run_id: str, later: CompleteLater, timer: DueTimer
) -> tuple[Run | OperationRefused, Decision | Rejection]:
    """A completion and the firing of the token's timer, at once."""
    completion: list[Run | OperationRefused] = []
    firing: list[Decision | Rejection] = []

    async def complete() -> None:
        try:
            completion.append(await settle_token(engine, store, later.token, "cli", output={"x": 1}))
        except OperationRefused as exc:
            completion.append(exc)

    async def fire() -> None:
        event = TimerFired(timer.key, timer.purpose, timer.seq, timer.attempt)
        firing.append(await engine.apply(run_id, event, guard=ConsumeTimer(timer.id)))

    async with anyio.create_task_group() as group:
        group.start_soon(complete)
        group.start_soon(fire)
    return completion[0], firing[0]


async def test_a_completion_racing_its_timeout_exactly_one_wins(store: Store) -> None:
    for _ in range(8):
        engine, run_id, later = await deferred(store, timeout=5.0)
        [timer] = [t for t in await store.claim_timers(NOW + 10, 30, 100) if t.run_id == run_id]
        assert timer.purpose is TimerPurpose.COMPLETION
        completion, firing = await race(store, engine, run_id, later, timer)
        record = await store.find_completion(later.digest)
        assert record is not None
        completed = isinstance(completion, Run)
        timed_out = isinstance(firing, Decision)
        assert completed != timed_out, (completion, firing)  # exactly one
        run = await store.load_run(run_id)
        assert run is not None
        assert run.status is RunStatus.RUNNING
        if completed:
            assert record.outcome is CompletionOutcome.COMPLETED
            assert run.data.get("x") == 1
        else:
            assert record.outcome is CompletionOutcome.TIMED_OUT
            assert isinstance(completion, CompletionTokenUsed)
            assert "timed out" in str(completion)
            assert "x" not in run.data


class Misses:
    """The store's completion lookups, telling when one found nothing."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.missed = anyio.Event()

    async def find_completion(self, digest: str) -> CompletionRecord | None:
        found = await self.store.find_completion(digest)
        if found is None:
            self.missed.set()
        return found


async def test_a_completion_that_beats_the_recording_of_its_wait_waits_for_it(store: Store) -> None:
    # An outside system may answer before the worker has committed the wait: a
    # token made in a handler names its step, so the completion waits for it.
    engine = Engine(App([WF]), store, None, ManualClock(NOW))
    run_id = (await engine.start("contract", {"order": 1})).run.id
    later = CompleteLater(step=StepRef(run_id, 1, 1))
    assert step_of(later.token) == StepRef(run_id, 1, 1)
    settled: list[Run] = []
    watched = Misses(store)

    async def complete() -> None:
        settled.append(await settle_token(engine, watched, later.token, "fast", output={"early": True}))

    async with anyio.create_task_group() as group:
        group.start_soon(complete)
        await watched.missed.wait()  # the completion looked, found nothing, and waits
        assert not settled
        await engine.apply(run_id, StepDeferred(1, 1, later.digest, None))
    assert settled[0].data["early"] is True
    # A token naming a step that is not running (and never recorded) is unknown at once.
    stale = CompleteLater(step=StepRef(run_id, 1, 1))
    with anyio.fail_after(2), pytest.raises(UnknownCompletionToken):
        await settle_token(engine, store, stale.token, "fast")
    # One whose handler still runs past the patience is refused, saying so.
    running = CompleteLater(step=StepRef(run_id, 2, 1))
    with pytest.raises(OperationRefused, match=r"has not recorded its completion token after 0\.1s"):
        await settle_token(engine, store, running.token, "fast", patience=0.1)
