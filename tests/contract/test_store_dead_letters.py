"""The dead-letters role (:class:`~legato.store.ports.DeadLetterStore`), on every backend."""

from __future__ import annotations

from legato.machine.commands import Decision
from legato.machine.decide import decide
from legato.machine.events import StepFailed, StepSucceeded, TimerFired
from legato.machine.vocabulary import TimerPurpose
from legato.store.base import (
    Applied,
    GuardFailed,
    PoisonMessage,
    ResolveDeadLetter,
)
from legato.store.ports import Store
from tests.contract.workflow import NOW, WF, started
from tests.unit.sim import boom


async def test_dead_letters_are_recorded_with_the_transition_and_replayed_once(store: Store) -> None:
    run = (await store.create_run(started())).run
    d1 = decide(WF, run, StepFailed(1, 1, boom("ValueError", "bad input")), NOW)
    assert isinstance(d1, Decision)
    await store.apply(d1)
    d1b = decide(WF, d1.run, TimerFired("retry:1", TimerPurpose.RETRY, 1, 2), NOW + 6)
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


async def test_dead_letters_are_listed_newest_first_a_page_at_a_time(store: Store) -> None:
    ids = [
        await store.record_poison(PoisonMessage("not json", "q", "k", b"{", f"m-{i}", {}, f"fp-{i}"), NOW + i)
        for i in range(5)
    ]
    pages = [[d.id for d in await store.list_dead_letters(limit=2, offset=offset)] for offset in (0, 2, 4, 6)]
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1], []]
    assert [d.id for d in await store.list_dead_letters(status=None, limit=10, offset=3)] == ids[1::-1]
