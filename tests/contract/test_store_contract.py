"""The store contract: every backend (Postgres, SQLite) behaves the same."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from legato import Approval, RetryPolicy, RunStatus, Task, Workflow
from legato.machine.commands import Decision
from legato.machine.decide import decide, start_run
from legato.machine.events import StepFailed, StepSucceeded, TimerFired
from legato.messages import TaskMessage
from legato.store.base import (
    Applied,
    Conflict,
    ConsumeTimer,
    GuardFailed,
    PoisonMessage,
    ResolveDeadLetter,
    RunQuery,
    Store,
)
from legato.store.rows import new_run_id
from tests.unit.sim import boom


def h(ctx: Any) -> None:
    return None


WF = Workflow(
    "contract",
    start="a",
    retry=RetryPolicy(max_attempts=2, initial_delay=5, jitter=0),
    states={"a": Task(h, next="b"), "b": Task(h, next="gate"), "gate": Approval("go", timeout=60)},
)
NOW = 1_800_000_000.0


def started(key: str | None = None, data: dict[str, Any] | None = None) -> Decision:
    return start_run(WF, new_run_id(), data or {"order": 1}, NOW, idempotency_key=key)


async def test_create_and_load_a_run_with_its_first_outbox_message(store: Store) -> None:
    decision = started()
    created = await store.create_run(decision, {"traceparent": "00-abc-def-01"})
    assert created.created
    [message] = created.outbox
    task = TaskMessage.decode(message.body)
    assert (task.run_id, task.state, task.attempt) == (decision.run.id, "a", 1)
    assert message.headers == {"traceparent": "00-abc-def-01"}
    loaded = await store.load_run(decision.run.id)
    assert loaded == decision.run
    history = await store.history(decision.run.id)
    assert [(e.version, e.kind) for e in history] == [(1, "run_started"), (1, "step_scheduled")]


async def test_an_idempotency_key_starts_one_run(store: Store) -> None:
    first = await store.create_run(started(key="order:42"))
    second = await store.create_run(started(key="order:42"))
    assert first.created
    assert not second.created
    assert second.run.id == first.run.id
    assert second.outbox == ()
    assert len(await store.list_runs(RunQuery())) == 1


async def test_concurrent_creates_with_one_key_start_one_run(store: Store) -> None:
    results = await asyncio.gather(*(store.create_run(started(key="same")) for _ in range(8)))
    assert sum(r.created for r in results) == 1
    assert len({r.run.id for r in results}) == 1


async def test_apply_is_conditional_on_the_version(store: Store) -> None:
    created = await store.create_run(started())
    run = created.run
    first = decide(WF, run, StepSucceeded(1, 1, {"x": 1}), NOW + 1)
    second = decide(WF, run, StepFailed(1, 1, boom()), NOW + 1)
    assert isinstance(first, Decision)
    assert isinstance(second, Decision)
    assert isinstance(await store.apply(first), Applied)
    # The second was decided on the same version: it loses and changes nothing.
    assert isinstance(await store.apply(second), Conflict)
    loaded = await store.load_run(run.id)
    assert loaded == first.run
    assert loaded is not None
    assert loaded.data["x"] == 1
    kinds = [e.kind for e in await store.history(run.id)]
    assert "step_failed" not in kinds


async def test_only_one_of_many_racing_transitions_wins(store: Store) -> None:
    run = (await store.create_run(started())).run
    decisions = [decide(WF, run, StepSucceeded(1, 1, {"winner": i}), NOW + 1) for i in range(10)]
    results = await asyncio.gather(*(store.apply(d) for d in decisions if isinstance(d, Decision)))
    assert sum(isinstance(r, Applied) for r in results) == 1
    history = await store.history(run.id)
    assert [e.kind for e in history].count("step_succeeded") == 1


async def test_timers_are_scheduled_claimed_once_and_consumed_with_the_transition(store: Store) -> None:
    run = (await store.create_run(started())).run
    failed = decide(WF, run, StepFailed(1, 1, boom()), NOW + 1)
    assert isinstance(failed, Decision)
    assert isinstance(await store.apply(failed), Applied)
    assert await store.next_timer_at() == pytest.approx(NOW + 6)
    assert await store.claim_timers(NOW + 2, lease=30, limit=10) == []
    [timer] = await store.claim_timers(NOW + 7, lease=30, limit=10)
    assert (timer.key, timer.purpose, timer.seq, timer.attempt) == ("retry:1", "retry", 1, 2)
    # Leased: a second poller does not get it until the lease expires.
    assert await store.claim_timers(NOW + 8, lease=30, limit=10) == []
    [again] = await store.claim_timers(NOW + 40, lease=30, limit=10)
    assert again.id == timer.id
    fired = decide(WF, failed.run, TimerFired(timer.key, timer.purpose, timer.seq, timer.attempt), NOW + 41)
    assert isinstance(fired, Decision)
    applied = await store.apply(fired, ConsumeTimer(timer.id))
    assert isinstance(applied, Applied)
    assert len(applied.outbox) == 1
    # The same timer cannot fire twice.
    loaded = await store.load_run(run.id)
    assert loaded is not None
    stale = decide(WF, loaded, StepSucceeded(1, 2, None), NOW + 42)
    assert isinstance(stale, Decision)
    assert isinstance(await store.apply(stale, ConsumeTimer(timer.id)), GuardFailed)
    assert await store.claim_timers(NOW + 1000, lease=30, limit=10) == []


async def test_cancelled_timers_disappear(store: Store) -> None:
    run = (await store.create_run(started())).run
    d1 = decide(WF, run, StepSucceeded(1, 1, None), NOW)
    assert isinstance(d1, Decision)
    await store.apply(d1)
    d2 = decide(WF, d1.run, StepSucceeded(2, 1, None), NOW)
    assert isinstance(d2, Decision)
    await store.apply(d2)
    assert await store.next_timer_at() == pytest.approx(NOW + 60)  # the approval's timeout
    from legato.machine.events import SignalReceived

    d3 = decide(WF, d2.run, SignalReceived("go"), NOW)
    assert isinstance(d3, Decision)
    await store.apply(d3)
    assert d3.run.status is RunStatus.SUCCEEDED
    assert await store.next_timer_at() is None


async def test_outbox_rows_are_claimed_by_age_with_a_lease_and_deleted_when_done(store: Store) -> None:
    created = await store.create_run(started())
    assert await store.claim_outbox(NOW - 1, NOW, lease=30, limit=10) == []
    [claimed] = await store.claim_outbox(NOW + 5, NOW + 5, lease=30, limit=10)
    assert claimed.id == created.outbox[0].id
    assert await store.claim_outbox(NOW + 6, NOW + 6, lease=30, limit=10) == []
    await store.outbox_done([claimed.id])
    assert await store.claim_outbox(NOW + 100, NOW + 100, lease=30, limit=10) == []


async def test_claimed_outbox_rows_are_left_alone_until_the_claim_runs_out(store: Store) -> None:
    created = await store.create_run(started())
    [row] = created.outbox
    await store.claim_outbox_rows([row.id], NOW + 60)
    assert await store.claim_outbox(NOW + 30, NOW + 30, lease=30, limit=10) == []
    [late] = await store.claim_outbox(NOW + 61, NOW + 61, lease=30, limit=10)
    assert late.id == row.id


async def test_dead_letters_are_recorded_with_the_transition_and_replayed_once(store: Store) -> None:
    run = (await store.create_run(started())).run
    d1 = decide(WF, run, StepFailed(1, 1, boom("ValueError", "bad input")), NOW)
    assert isinstance(d1, Decision)
    await store.apply(d1)
    d1b = decide(WF, d1.run, TimerFired("retry:1", "retry", 1, 2), NOW + 6)
    assert isinstance(d1b, Decision)
    await store.apply(d1b)
    d2 = decide(WF, d1b.run, StepFailed(1, 2, boom("ValueError", "bad input")), NOW + 6)
    assert isinstance(d2, Decision)
    applied = await store.apply(d2)
    assert isinstance(applied, Applied)
    assert [m.kind for m in applied.outbox] == ["dead_letter"]
    assert applied.outbox[0].headers["x-legato-reason"] == "retries exhausted"
    [letter] = await store.list_dead_letters()
    assert (letter.run_id, letter.state, letter.attempts, letter.reason) == (
        run.id,
        "a",
        2,
        "retries exhausted",
    )
    assert letter.error is not None
    assert letter.error.message == "bad input"
    assert await store.get_dead_letter(letter.id) == letter
    [group] = await store.group_dead_letters("error")
    assert (group.key, group.count, group.sample_id) == ("ValueError", 1, letter.id)
    from legato.machine.events import RetryRequested

    replay = decide(WF, d2.run, RetryRequested("ops", dead_letter=letter.id), NOW + 10)
    assert isinstance(replay, Decision)
    assert isinstance(await store.apply(replay, ResolveDeadLetter(letter.id, "ops")), Applied)
    again = await store.load_run(run.id)
    assert again is not None
    second = decide(WF, again, StepSucceeded(1, 3, None), NOW + 11)
    assert isinstance(second, Decision)
    assert isinstance(await store.apply(second, ResolveDeadLetter(letter.id, "ops")), GuardFailed)
    resolved = await store.get_dead_letter(letter.id)
    assert resolved is not None
    assert (resolved.status, resolved.resolved_by) == ("replayed", "ops")
    assert await store.list_dead_letters() == []


async def test_poison_messages_are_kept_once_and_purged_only_when_asked(store: Store) -> None:
    poison = PoisonMessage("not json", "q", "order.placed", b"{oops", "m-1", {"h": 1}, "fp-1")
    first = await store.record_poison(poison, NOW)
    assert await store.record_poison(poison, NOW + 1) == first
    [record] = await store.list_dead_letters()
    assert record.source == "message"
    assert record.message is not None
    assert record.message["body"] == "{oops"
    assert await store.purge_dead_letters(NOW - 10) == 0
    assert await store.purge_dead_letters(NOW + 10) == 1
    assert await store.list_dead_letters(status=None) == []
    await store.record_poison(PoisonMessage("again", "q", "k", b"x", None, {}, "fp-2"), NOW)
    assert await store.purge_dead_letters(None) == 1


async def test_list_runs_filters_and_pages(store: Store) -> None:
    for i in range(5):
        await store.create_run(start_run(WF, new_run_id(), {}, NOW + i))
    newest = await store.list_runs(RunQuery(limit=2))
    assert [r.created_at for r in newest] == [NOW + 4, NOW + 3]
    page = await store.list_runs(RunQuery(limit=10, before=NOW + 3))
    assert [r.created_at for r in page] == [NOW + 2, NOW + 1, NOW]
    assert await store.list_runs(RunQuery(status=RunStatus.SUCCEEDED)) == []
    assert len(await store.list_runs(RunQuery(workflow="contract"))) == 5
    assert await store.list_runs(RunQuery(workflow="other")) == []


async def test_rejections_are_recorded_without_touching_the_run(store: Store) -> None:
    run = (await store.create_run(started())).run
    await store.record_rejection(run, "StepSucceeded", "stale result", NOW)
    history = await store.history(run.id)
    assert history[-1].kind == "rejected"
    assert history[-1].detail == {"event": "StepSucceeded", "reason": "stale result"}
    assert await store.load_run(run.id) == run


async def test_a_run_id_in_another_spelling_finds_the_run(store: Store) -> None:
    run = (await store.create_run(started())).run
    for spelling in (run.id.upper(), run.id.replace("-", "")):
        assert await store.load_run(spelling) == run
        assert len(await store.history(spelling)) == 2


async def test_unknown_runs_are_none(store: Store) -> None:
    assert await store.load_run(new_run_id()) is None
    assert await store.load_run("not-a-uuid") is None


async def test_migrate_is_idempotent(store: Store) -> None:
    assert await store.migrate() == []
