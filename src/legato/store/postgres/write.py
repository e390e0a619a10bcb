"""How a decision is written to Postgres: the only code that turns
:class:`~legato.store.effects.Effects` into rows here.

Every transition starts with one statement (``APPLY_BATCH``): the
conditional update of the run, its history rows, its task outbox rows and its
map items' rows.
Group commit sends it for many runs at once and nothing else, which is why it
takes only decisions whose effects say ``group_commit``; every other
transition sends it for one run inside a transaction, then its guard, then
:func:`write_rest` (timers, dead letters). A new run (``INSERT_EFFECTS``)
has no update to make: its row was inserted just before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from legato.machine.commands import Decision
from legato.machine.run import Run
from legato.machine.search import search_values
from legato.notices import OUTBOX_KIND as NOTICE
from legato.store.base import OutboxMessage
from legato.store.effects import Effects
from legato.store.postgres import sql as q
from legato.store.postgres.rows import columns, outbox_from_row, run_document
from legato.store.rows import dead_letter_body, dead_letter_headers, over_input

if TYPE_CHECKING:
    from legato.store.postgres.rows import Conn


INSERT_COMPLETIONS = """
INSERT INTO completion_tokens (digest, run_id, seq, attempt, state, created_at, expires_at)
SELECT u.digest, $1, u.seq, u.attempt, u.state, $2, u.expires_at
FROM unnest($3::text[], $4::integer[], $5::integer[], $6::text[], $7::timestamptz[])
     AS u (digest, seq, attempt, state, expires_at)
"""
SETTLE_COMPLETION = """
UPDATE completion_tokens SET settled_at = $4, outcome = $5, settled_by = $6
WHERE run_id = $1 AND seq = $2 AND attempt = $3 AND settled_at IS NULL
"""


@dataclass(eq=False, slots=True)
class Write:
    """One decision to write, with its effects and its messages' headers."""

    decision: Decision
    effects: Effects
    headers: Mapping[str, str] | None
    data: Any = None
    """The run's data as the store made it, when it changed it (a map's join)."""


@dataclass(slots=True)
class Written:
    updated: set[str]
    """Runs whose conditional update matched (for a new run: none)."""
    outbox: dict[str, list[OutboxMessage]]
    """The outbox rows inserted, by run."""


async def write_batch(
    conn: Conn, writes: Sequence[Write], sent: Sequence[int] = (), *, new: bool = False
) -> Written:
    """The runs (updated unless ``new``), their history, task outbox and map item rows;
    deletes the ``sent`` outbox rows. One statement; a run that lost its race writes nothing."""
    runs: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    outbox: list[tuple[Any, ...]] = []
    items: list[dict[str, Any]] = []
    for write in writes:
        decision = write.decision
        run = decision.run
        if not new:
            runs.append(run_document(run, decision.previous_version, decision.data_set))
        for idx, h in enumerate(write.effects.history):
            history.append(
                {
                    "run_id": run.id,
                    "version": run.version,
                    "idx": idx,
                    "kind": h.kind,
                    "state": h.state,
                    "attempt": h.attempt,
                    "at": h.at,
                    "actor": h.actor,
                    "detail": dict(h.detail),
                    "run_created_at": run.created_at,
                }
            )
        for item in write.effects.map_items:
            items.append(
                {
                    "run_id": run.id,
                    "map_seq": item.map_seq,
                    "idx": item.index,
                    "ok": item.ok,
                    "result": item.result,
                    "error": item.error.to_json() if item.error else None,
                    "finished_at": run.updated_at,
                }
            )
        headers = dict(write.headers or {})
        for body, priority in write.effects.tasks:
            outbox.append((run.id, "task", body, priority, headers, run.updated_at))
        for body, priority in write.effects.notices:
            outbox.append((run.id, NOTICE, body, priority, headers, run.updated_at))
    if new:
        records = await conn.fetch(q.INSERT_EFFECTS, history, *columns(outbox, 6), items)
    else:
        records = await conn.fetch(q.APPLY_BATCH, runs, history, *columns(outbox, 6), list(sent), items)
    written = Written(set(), {})
    for record in records:
        if record["what"] == "run":
            written.updated.add(record["run_id"])
        else:
            written.outbox.setdefault(record["run_id"], []).append(outbox_from_row(record))
    return written


async def write_rest(conn: Conn, write: Write, timer_channel: str) -> list[OutboxMessage]:
    """What group commit cannot carry: timers (with a NOTIFY for the pollers),
    a map's join, completion tokens and dead letters (with their outbox messages).
    In the caller's transaction, after :func:`write_batch`."""
    assert conn.is_in_transaction(), "timers and dead letters must commit with their run"
    run = write.decision.run
    effects = write.effects
    if effects.cancel:
        await conn.execute(q.DELETE_TIMERS, run.id, list(effects.cancel))
    for timer in effects.schedule:
        await conn.execute(
            q.UPSERT_TIMER, run.id, timer.key, timer.purpose, timer.seq, timer.attempt, timer.fire_at
        )
    if effects.schedule:
        await conn.execute(q.NOTIFY, timer_channel, str(min(t.fire_at for t in effects.schedule)))
    for collect in effects.collect:
        stored = await conn.fetchval(q.COLLECT_MAP_RESULTS, run.id, collect.map_seq, collect.key)
        write.data = over_input(run.input, stored)
    for close in effects.close:
        await conn.execute(
            q.CLOSE_DEAD_LETTERS, run.id, list(close.seqs), close.status, run.updated_at, close.actor
        )
    if effects.awaits or effects.settles:
        await write_completions(conn, run, effects)
    if effects.collect and run.search is not None:
        # The join changed the data here, after the decision: its search values follow.
        await conn.execute(q.SET_SEARCH, run.id, search_values(run.search, write.data))
    if not effects.dead_letters:
        return []
    bodies: list[bytes] = []
    header_list: list[dict[str, str]] = []
    for letter in effects.dead_letters:
        letter_id = await conn.fetchval(
            q.INSERT_STEP_DEAD_LETTER,
            run.id,
            run.workflow,
            letter.state,
            letter.seq,
            letter.attempt,
            letter.kind.value,
            letter.reason,
            letter.error.to_json(),
            letter.attempts,
            run.updated_at,
        )
        bodies.append(dead_letter_body(run, letter, letter_id))
        header_list.append({**(write.headers or {}), **dead_letter_headers(letter)})
    kinds = ["dead_letter"] * len(bodies)
    priorities = [run.priority] * len(bodies)
    records = await conn.fetch(
        q.INSERT_OUTBOX, run.id, kinds, bodies, priorities, header_list, run.updated_at
    )
    return [outbox_from_row(r) for r in records]


async def write_completions(conn: Conn, run: Run, found: Effects) -> None:
    """The decision's completion tokens: new ones recorded, used ones settled."""
    if found.awaits:
        awaits = found.awaits
        await conn.execute(
            INSERT_COMPLETIONS,
            run.id,
            run.updated_at,
            [a.digest for a in awaits],
            [a.seq for a in awaits],
            [a.attempt for a in awaits],
            [a.state for a in awaits],
            [a.expires_at for a in awaits],
        )
    for settle in found.settles:
        await conn.execute(
            SETTLE_COMPLETION,
            run.id,
            settle.seq,
            settle.attempt,
            run.updated_at,
            settle.outcome.value,
            settle.actor,
        )
