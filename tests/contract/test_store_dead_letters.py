"""The dead-letters role (:class:`~legato.store.ports.DeadLetterStore`), on every backend."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

import legato.store.postgres.connection as pg_connection
import legato.store.sqlite.connection as sqlite_connection
from legato.machine.commands import Decision
from legato.machine.decide import decide
from legato.machine.events import StepFailed, StepSucceeded, TimerFired
from legato.machine.vocabulary import TimerPurpose
from legato.store.base import (
    Applied,
    GuardFailed,
    PoisonedStep,
    PoisonMessage,
    ResolveDeadLetter,
)
from legato.store.ports import Store
from legato.store.postgres import PostgresStore
from legato.store.sqlite import SqliteStore
from tests.conftest import PG_DSN
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
    assert (group.key, group.count, group.sample_id) == ("ValueError: bad input", 1, letter.id)
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
    assert record.body == b"{oops"
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


async def _fail_for_good(store: Store, error_type: str, message: str, at: float) -> None:
    run = (await store.create_run(started())).run
    decision = decide(WF, run, StepFailed(1, 1, boom(error_type, message), non_retryable=True), at)
    assert isinstance(decision, Decision)
    assert isinstance(await store.apply(decision), Applied)


async def test_failure_patterns_group_by_error_type_and_normalised_message(store: Store) -> None:
    # 150 unknown event names are one pattern, not 150.
    for i in range(150):
        poison = PoisonMessage(
            f"no workflow is triggered by event 'evt-{i * 7919 % 1000}'",
            "q",
            f"evt-{i}",
            b"{}",
            None,
            {},
            f"fp-{i}",
        )
        await store.record_poison(poison, NOW + i)
    for i in range(3):
        await _fail_for_good(store, "KeyError", f"order {1000 + i} has no sku 'x{i}'", NOW + 200 + i)
    await _fail_for_good(store, "ValueError", "order 7 has no sku 'y'", NOW + 300)
    await store.record_poison(PoisonMessage("not json: line 1", "q", "k", b"{", None, {}, "fp-x"), NOW + 400)

    groups = await store.group_dead_letters("error")
    assert [(g.key, g.count) for g in groups] == [
        ("no workflow is triggered by event '*'", 150),
        ("KeyError: order <n> has no sku '*'", 3),
        ("not json: line <n>", 1),
        ("ValueError: order <n> has no sku '*'", 1),
    ]
    unknown, key_errors = groups[0], groups[1]
    # One sample, the newest, and the span of the whole pattern.
    newest = await store.list_dead_letters(limit=500)
    by_reason = [r for r in newest if r.source == "message" and r.reason.startswith("no workflow")]
    assert unknown.sample_id == max(r.id for r in by_reason)
    assert unknown.sample_error == "no workflow is triggered by event 'evt-" + str(149 * 7919 % 1000) + "'"
    assert (unknown.first_seen, unknown.last_seen) == (NOW, NOW + 149)
    assert key_errors.sample_error == "KeyError: order 1002 has no sku 'x2'"
    # Grouping by state or workflow is unchanged: one key, no pattern split.
    assert {g.key: g.count for g in await store.group_dead_letters("workflow")} == {
        "(message)": 151,
        WF.name: 4,
    }


async def test_a_poison_message_is_kept_whatever_its_bytes_and_text(store: Store) -> None:
    """A raw NUL, bytes that are no UTF-8, NUL and lone surrogates in the reason,
    the routing key, the message id and the headers: recorded all the same, the
    body byte for byte (to replay it as it came), the text made storable."""
    body = b'{"a": "x\x00y"}\xff\xfe'
    poison = PoisonMessage(
        "body is not valid JSON: \x00 at 8 \udcff",
        "q",
        "order.\x00placed",
        body,
        "m-\x00",
        {"h\x00": "v\x00", "n": [1, "\x00"], "s": "\udcfe"},
        "fp-nul",
        PoisonedStep("not-a-uuid", "st\x00ate", 1, 1),
    )
    dead_letter_id = await store.record_poison(poison, NOW)
    record = await store.get_dead_letter(dead_letter_id)
    assert record is not None
    assert record.body == body
    assert record.reason == "body is not valid JSON: \\x00 at 8 \\udcff"
    assert record.message == {
        "queue": "q",
        "routing_key": "order.\\x00placed",
        "message_id": "m-\\x00",
        "headers": {"h\\x00": "v\\x00", "n": [1, "\\x00"], "s": "\\udcfe"},
    }
    assert (record.run_id, record.state) == (None, "st\\x00ate")


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
async def test_migration_0015_moves_old_bodies_into_bytes(
    backend: str, pg_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poison message recorded before 0015 (its body a string in ``message``)
    keeps its body, now as bytes, and ``message`` loses the key."""
    module = pg_connection if backend == "postgres" else sqlite_connection
    every = module.migrations
    monkeypatch.setattr(module, "migrations", lambda dialect: [m for m in every(dialect) if m.number < 15])
    store: PostgresStore | SqliteStore = (
        PostgresStore(PG_DSN, pg_schema, min_size=1, max_size=2)
        if backend == "postgres"
        else SqliteStore(tmp_path / "legato.db")
    )
    await store.open()
    try:
        await store.migrate()
        old = orjson.dumps(
            {"queue": "q", "routing_key": "k", "message_id": "m", "headers": {}, "body": "{oops é"}
        )
        if isinstance(store, PostgresStore):
            async with store.pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO dead_letters (source, reason, created_at, message, fingerprint) "
                    "VALUES ('message', 'not json', now(), $1::text::jsonb, 'fp-old')",
                    old.decode(),
                )
        else:
            async with store._write() as db:
                await db.execute(
                    "INSERT INTO dead_letters (source, reason, created_at, message, fingerprint) "
                    "VALUES ('message', 'not json', 0, ?, 'fp-old')",
                    (old.decode(),),
                )
        monkeypatch.setattr(module, "migrations", every)
        assert (await store.migrate())[0] == "0015_poison_bodies"
        [record] = await store.list_dead_letters()
    finally:
        await store.close()
    assert record.body == "{oops é".encode()
    assert record.message == {"queue": "q", "routing_key": "k", "message_id": "m", "headers": {}}


async def _failed_for_good(store: Store) -> tuple[Decision, int]:
    """A run of WF whose step ``a`` failed for good (non-retryable), and its dead letter."""
    run = (await store.create_run(started())).run
    failed = decide(WF, run, StepFailed(1, 1, boom("ValueError", "bug"), non_retryable=True), NOW)
    assert isinstance(failed, Decision)
    assert isinstance(await store.apply(failed), Applied)
    [letter] = [d for d in await store.list_dead_letters() if d.run_id == run.id]
    return failed, letter.id


async def test_an_operator_retry_or_skip_closes_the_steps_dead_letter_with_the_transition(
    store: Store,
) -> None:
    from legato.machine.events import RetryRequested, SkipRequested

    for event, status in ((RetryRequested("ops:ann"), "replayed"), (SkipRequested("ops:ann"), "resolved")):
        failed, letter_id = await _failed_for_good(store)
        acted = decide(WF, failed.run, event, NOW + 1)
        assert isinstance(acted, Decision)
        assert isinstance(await store.apply(acted), Applied)
        closed = await store.get_dead_letter(letter_id)
        assert closed is not None
        assert (closed.status, closed.resolved_by) == (status, "ops:ann"), event
    assert await store.list_dead_letters() == []


async def test_a_dead_letter_is_resolved_once_without_a_replay(store: Store) -> None:
    from legato.machine.vocabulary import DeadLetterStatus

    failed, letter_id = await _failed_for_good(store)
    assert await store.resolve_dead_letter(letter_id, "ops:ann", NOW + 1, DeadLetterStatus.RESOLVED)
    assert not await store.resolve_dead_letter(letter_id, "ops:bob", NOW + 2, DeadLetterStatus.RESOLVED)
    resolved = await store.get_dead_letter(letter_id)
    assert resolved is not None
    assert (resolved.status, resolved.resolved_by) == ("resolved", "ops:ann")
    assert await store.list_dead_letters(status="resolved") == [resolved]
    run = await store.load_run(failed.run.id)
    assert run == failed.run  # the run is left as it is


async def test_dead_letters_are_counted_as_listed_and_as_a_purge_would_delete(store: Store) -> None:
    for n in range(3):
        await store.record_poison(PoisonMessage("bad", "q", "k", b"x", None, {}, f"fp-{n}"), NOW + n)
    [newest, *_] = await store.list_dead_letters()
    assert await store.resolve_dead_letter(newest.id, "ops", NOW + 5)
    assert await store.count_dead_letters() == 2
    assert await store.count_dead_letters(status=None) == 3
    assert await store.count_dead_letters(status="replayed") == 1
    assert await store.count_dead_letters(workflow="nope", status=None) == 0
    assert await store.count_dead_letters(status=None, older_than=NOW + 1) == 1
    assert await store.count_dead_letters(status=None, older_than=NOW + 1) == await store.purge_dead_letters(
        NOW + 1
    )
    assert await store.count_dead_letters(status=None) == 2
