"""Child runs in the store (runs role, migration 0016), on every backend: a child
is created in its parent's transaction, once per key, listed by its parent, and
its end is a notice committed with its last transition."""

from __future__ import annotations

from typing import Any

from legato import App, Child, RunStatus, Task, Workflow
from legato.children import with_children
from legato.machine.commands import Decision
from legato.machine.decide import decide, start_run
from legato.machine.events import StepSucceeded
from legato.messages import TaskMessage
from legato.notices import OUTBOX_KIND, Notice, NoticeKind, is_notice
from legato.store.base import Applied, Conflict
from legato.store.ports import Store
from legato.store.rows import new_run_id


def h(ctx: Any) -> None:
    return None


CHILD = Workflow("contract_child", start="work", states={"work": Task(h)})
PARENT = Workflow(
    "contract_parent",
    start="first",
    states={
        "first": Task(h, next="call"),
        "call": Child("contract_child", input={"n": "n"}, next="last"),
        "last": Task(h),
    },
)
STARTS_WITH_CHILD = Workflow("contract_eager", start="call", states={"call": Child("contract_child")})
APP = App([CHILD, PARENT, STARTS_WITH_CHILD])
NOW = 1_800_000_000.0


async def _parent_at_child(store: Store) -> tuple[Decision, Applied]:
    created = await store.create_run(start_run(PARENT, new_run_id(), {"n": 7}, NOW))
    decision = decide(PARENT, created.run, StepSucceeded(1, 1, {}), NOW + 1)
    assert isinstance(decision, Decision)
    decision = with_children(APP, decision, NOW + 1)
    applied = await store.apply(decision)
    assert isinstance(applied, Applied)
    return decision, applied


async def test_a_child_is_created_in_its_parents_transition_and_listed_by_it(store: Store) -> None:
    decision, applied = await _parent_at_child(store)
    [child_decision] = decision.children
    child = await store.load_run(child_decision.run.id)
    assert child is not None
    assert child.workflow == "contract_child"
    assert child.input == {"n": 7}
    assert child.parent is not None
    assert (child.parent.run_id, child.parent.seq, child.parent.attempt) == (applied.run.id, 2, 1)
    # The child's first task is committed (and returned) with the parent's transition.
    tasks = [TaskMessage.decode(m.body) for m in applied.outbox if m.kind == "task"]
    assert [(t.run_id, t.state) for t in tasks] == [(child.id, "work")]
    assert [c.id for c in await store.children(applied.run.id)] == [child.id]
    assert await store.children(child.id) == []
    assert await store.children("not-a-run-id") == []


async def test_a_child_key_makes_one_child_however_often_it_is_started(store: Store) -> None:
    decision, _ = await _parent_at_child(store)
    [child_decision] = decision.children
    again = await store.create_run(child_decision)
    assert not again.created
    assert again.run.id == child_decision.run.id
    assert len(await store.children(decision.run.id)) == 1


async def test_a_parent_transition_that_loses_its_race_creates_no_child(store: Store) -> None:
    created = await store.create_run(start_run(PARENT, new_run_id(), {"n": 1}, NOW))
    first = decide(PARENT, created.run, StepSucceeded(1, 1, {}), NOW + 1)
    assert isinstance(first, Decision)
    assert isinstance(await store.apply(with_children(APP, first, NOW + 1)), Applied)
    # The same transition again, from the old version: a conflict, and no second child.
    stale = with_children(APP, first, NOW + 2)
    assert isinstance(await store.apply(stale), Conflict)
    assert len(await store.children(created.run.id)) == 1


async def test_a_run_whose_first_state_is_a_child_state_creates_both(store: Store) -> None:
    decision = with_children(APP, start_run(STARTS_WITH_CHILD, new_run_id(), {"x": 1}, NOW), NOW)
    created = await store.create_run(decision)
    [child] = await store.children(created.run.id)
    assert child.input == {"x": 1}
    assert {m.run_id for m in created.outbox} == {child.id}


async def test_a_child_end_commits_a_notice_to_its_parent(store: Store) -> None:
    decision, _ = await _parent_at_child(store)
    child = await store.load_run(decision.children[0].run.id)
    assert child is not None
    ended = decide(CHILD, child, StepSucceeded(1, 1, {"done": True}), NOW + 2)
    assert isinstance(ended, Decision)
    assert ended.run.status is RunStatus.SUCCEEDED
    applied = await store.apply(ended)  # a notice only: group commit can carry it
    assert isinstance(applied, Applied)
    [message] = applied.outbox
    assert message.kind == OUTBOX_KIND
    assert is_notice(message.body)
    notice = Notice.decode(message.body)
    assert (notice.kind, notice.run_id, notice.source) == (NoticeKind.CHILD_ENDED, decision.run.id, child.id)
    assert (notice.seq, notice.attempt) == (2, 1)
