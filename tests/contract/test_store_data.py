"""A run's data through transitions, on every backend: a step writes the keys it set.

Postgres merges a transition's keys into the stored document (``data ||
patch``) instead of rewriting the whole of it, so these check that what is
stored is exactly the document the core decided, step after step, whatever
the keys' values (replaced, null, nested, unchanged).
"""

from __future__ import annotations

from dataclasses import replace

import asyncpg
import orjson

from legato.machine.commands import Decision
from legato.machine.decide import decide
from legato.machine.events import StepFailed, StepSucceeded, TimerFired
from legato.machine.run import Run
from legato.machine.vocabulary import TimerPurpose
from legato.store.base import Applied
from legato.store.ports import Store
from legato.store.postgres import PostgresStore
from tests.conftest import PG_DSN
from tests.contract.workflow import NOW, WF, started
from tests.unit.sim import boom

BIG = {f"field{i}": "x" * 1000 for i in range(64)}


async def _apply(store: Store, decision: Decision | object) -> Run:
    assert isinstance(decision, Decision), decision
    applied = await store.apply(decision)
    assert isinstance(applied, Applied), applied
    loaded = await store.load_run(decision.run.id)
    assert loaded is not None
    assert loaded.data == decision.run.data
    return loaded


async def test_each_transition_stores_the_document_the_core_decided(store: Store) -> None:
    run = (await store.create_run(started(data={"order": 1, **BIG}))).run
    first = decide(WF, run, StepSucceeded(1, 1, {"added": {"deep": [1, 2, {"k": "v"}]}, "order": 2}), NOW + 1)
    assert isinstance(first, Decision)
    assert first.data_set == frozenset({"added", "order"})
    run = await _apply(store, first)
    assert run.data["order"] == 2
    assert run.data["added"] == {"deep": [1, 2, {"k": "v"}]}
    assert run.data["field63"] == "x" * 1000

    # A failed attempt sets nothing: the stored document stays as it was.
    failed = decide(WF, run, StepFailed(2, 1, boom()), NOW + 2)
    assert isinstance(failed, Decision)
    assert failed.data_set == frozenset()
    run = await _apply(store, failed)
    retried = decide(WF, run, TimerFired("retry:2", TimerPurpose.RETRY, 2, 2), NOW + 8)
    assert isinstance(retried, Decision)
    run = await _apply(store, retried)

    # A key replaced by another shape, and one set to null, are stored as such.
    last = decide(WF, run, StepSucceeded(2, 2, {"added": "flat", "field0": None}), NOW + 9)
    run = await _apply(store, last)
    assert run.data["added"] == "flat"
    assert "field0" in run.data
    assert run.data["field0"] is None
    assert len(run.data) == 64 + 2


async def test_postgres_writes_only_the_keys_the_transition_set(pg_store: PostgresStore) -> None:
    """The proof that the write is a patch: a key the decision did not say it set
    is not written, even though the decision's document holds a different value."""
    run = (await pg_store.create_run(started(data={"kept": "stored", **BIG}))).run
    decision = decide(WF, run, StepSucceeded(1, 1, {"new": 1}), NOW + 1)
    assert isinstance(decision, Decision)
    tampered = replace(decision, run=replace(decision.run, data={**decision.run.data, "kept": "changed"}))
    assert isinstance(await pg_store.apply(tampered), Applied)
    loaded = await pg_store.load_run(run.id)
    assert loaded is not None
    assert (loaded.data["kept"], loaded.data["new"]) == ("stored", 1)


async def test_postgres_compresses_run_documents_with_lz4(pg_store: PostgresStore, pg_schema: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        if (
            await conn.fetchval(
                "SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
            )
            == 0
        ):
            raise AssertionError("this Postgres was built without lz4; legato's CI server has it")
        rows = await conn.fetch(
            "SELECT attname, attcompression FROM pg_attribute "
            "WHERE attrelid = $1::regclass AND attname IN ('data', 'input') ORDER BY attname",
            f'"{pg_schema}".runs',
        )
    finally:
        await conn.close()
    assert [(r["attname"], r["attcompression"].decode()) for r in rows] == [("data", "l"), ("input", "l")]


async def _stored(pg_schema: str, run_id: str) -> object:
    conn = await asyncpg.connect(PG_DSN)
    try:
        raw = await conn.fetchval(f'SELECT data::text FROM "{pg_schema}".runs WHERE id = $1', run_id)
    finally:
        await conn.close()
    return orjson.loads(raw)


async def test_postgres_keeps_the_input_once_and_what_the_steps_set_over_it(
    pg_store: PostgresStore, pg_schema: str
) -> None:
    run = (await pg_store.create_run(started(data={"order": 1, **BIG}))).run
    assert await _stored(pg_schema, run.id) == {}
    decision = decide(WF, run, StepSucceeded(1, 1, {"order": 2, "new": "n"}), NOW + 1)
    run = await _apply(pg_store, decision)
    assert await _stored(pg_schema, run.id) == {"order": 2, "new": "n"}
    assert run.data == {**BIG, "order": 2, "new": "n"}
    assert run.input == {"order": 1, **BIG}


async def test_postgres_reads_a_row_that_holds_the_whole_document(
    pg_store: PostgresStore, pg_schema: str
) -> None:
    """Rows written before migration 0019 keep the whole document in ``data``."""
    run = (await pg_store.create_run(started(data={"order": 1, **BIG}))).run
    run = await _apply(pg_store, decide(WF, run, StepSucceeded(1, 1, {"new": "n"}), NOW + 1))
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'UPDATE "{pg_schema}".runs SET data = input || data WHERE id = $1', run.id)
    finally:
        await conn.close()
    loaded = await pg_store.load_run(run.id)
    assert loaded == run
    decision = decide(WF, run, StepSucceeded(2, 1, {"order": 3}), NOW + 2)
    after = await _apply(pg_store, decision)
    assert after.data == {**BIG, "order": 3, "new": "n"}
