"""Events of one run committed together (machine/combine.py), on every backend.

On Postgres the combined transition goes through group commit like any other,
with its keys merged into the stored document (``data || patch``): the row,
the history lines and the task messages must be exactly those the combined
decision says.
"""

from __future__ import annotations

from legato import App
from legato.engine import Engine
from legato.machine.commands import Decision
from legato.machine.events import StepSucceeded
from legato.machine.vocabulary import HistoryKind
from legato.messages import TaskMessage
from legato.store.ports import Store
from tests.unit.test_turns import FAN, _queued
from tests.unit.test_turns import branches as tokens_of


async def test_a_parallel_whose_branches_end_together_joins_in_one_commit(store: Store) -> None:
    engine = Engine(App([FAN]), store, None)
    run = (await engine.start("fan", {"order": 7, "b1": "replaced"})).run
    branches = tokens_of(run)
    outcomes = await _queued(
        engine, run, [StepSucceeded(t.seq, 1, {t.state: t.seq, "last": t.state}) for t in branches]
    )
    together = outcomes[0]
    assert isinstance(together, Decision)
    assert all(o is together for o in outcomes)
    assert together.run.version == run.version + 1

    loaded = await store.load_run(run.id)
    assert loaded is not None
    assert loaded.version == run.version + 1
    assert loaded.data == together.run.data
    # Each branch's keys, the input's kept, and of a key all set, the last one's.
    assert loaded.data == {
        "order": 7,
        "b0": branches[0].seq,
        "b1": branches[1].seq,
        "b2": branches[2].seq,
        "last": "b2",
    }
    assert [t.state for t in loaded.tokens] == ["after"]

    lines = [h for h in await store.history(run.id) if h.version == loaded.version]
    assert [(h.kind, h.state) for h in lines if h.kind is HistoryKind.STEP_SUCCEEDED] == [
        (HistoryKind.STEP_SUCCEEDED, t.state) for t in branches
    ]
    assert [h.idx for h in lines] == list(range(len(lines)))

    messages = [TaskMessage.decode(m.body) for m in await store.claim_outbox(1e12, 1e12, lease=30, limit=10)]
    joined = [m for m in messages if m.state == "after"]
    assert len(joined) == 1
    assert joined[0].version == loaded.version
