"""The dashboard's aggregates: the same numbers from every store backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from legato import App, RetryPolicy, Task, Workflow
from legato.clock import ManualClock
from legato.engine import Engine
from legato.machine.errors import ErrorInfo
from legato.machine.events import StepFailed, StepSucceeded
from legato.machine.run import StepKind
from legato.store.insights import Insights, StatusCount, StepStats, insights_for
from legato.store.ports import Store

T0 = 1_699_999_200.0  # on an hour boundary
HOUR = 3600.0


async def noop(ctx: object) -> None:
    return None


app = App(
    [
        Workflow(
            "order",
            start="a",
            sla=100,
            retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0),
            states={"a": Task(noop, next="b"), "b": Task(noop)},
        ),
        Workflow(
            "refund",
            start="a",
            retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0),
            states={"a": Task(noop, next="b", compensate=noop), "b": Task(noop)},
        ),
    ]
)


@pytest.fixture
async def insights(store: Store) -> AsyncIterator[Insights]:
    found = insights_for(store)
    await found.open()
    yield found
    await found.close()


async def step(
    engine: Engine,
    clock: ManualClock,
    run_id: str,
    seq: int,
    attempt: int,
    took: float,
    error: str | None = None,
    final: bool = False,
    kind: StepKind = StepKind.STEP,
    message: str | None = None,
) -> None:
    started = clock.now()
    clock.advance(took)
    if error is None:
        event: StepSucceeded | StepFailed = StepSucceeded(
            seq, attempt, None, kind, started_at=started, finished_at=clock.now()
        )
    else:
        event = StepFailed(
            seq,
            attempt,
            ErrorInfo.of(error, message if message is not None else f"{error} in run"),
            kind,
            started_at=started,
            finished_at=clock.now(),
            non_retryable=final,
        )
    await engine.apply(run_id, event)


async def populate(store: Store, clock: ManualClock) -> list[str]:
    engine = Engine(app, store, None, clock)
    ok = (await engine.start("order", {})).run.id
    await step(engine, clock, ok, 1, 1, 0.1)
    await step(engine, clock, ok, 2, 1, 0.3)
    clock.advance(HOUR)  # the next runs finish in the next hour
    retried = (await engine.start("order", {})).run.id
    await step(engine, clock, retried, 1, 1, 0.2, "ConnectionError")
    await step(engine, clock, retried, 1, 2, 0.4)
    await step(engine, clock, retried, 2, 1, 0.5)
    broken = (await engine.start("order", {})).run.id
    await step(engine, clock, broken, 1, 1, 0.3, "ValueError", final=True)
    clock.advance(200)  # past the SLA: the slow run misses it
    slow = (await engine.start("order", {})).run.id
    clock.advance(150)
    await step(engine, clock, slow, 1, 1, 0.1)
    await step(engine, clock, slow, 2, 1, 0.1)
    running = (await engine.start("order", {})).run.id
    return [ok, retried, broken, slow, running]


async def test_aggregates_of_a_known_history(store: Store, insights: Insights) -> None:
    clock = ManualClock(T0)
    _ok, retried, broken, _slow, _running = await populate(store, clock)
    now = clock.now()

    assert await insights.active_counts() == [StatusCount("order", "running", 1)]

    buckets = await insights.throughput(T0, now + 1, HOUR)
    assert [
        (b.bucket, b.succeeded, b.failed, b.compensated, b.cancelled, b.sla_met, b.sla_missed)
        for b in buckets
    ] == [
        (T0, 1, 0, 0, 0, 1, 0),
        (T0 + HOUR, 2, 1, 0, 0, 2, 1),
    ]
    assert buckets[0].total_duration == pytest.approx(0.4)
    assert buckets[1].total_duration == pytest.approx((0.2 + 0.4 + 0.5) + 0.3 + 150.2)
    assert buckets[1].finished == 3
    # The range is half open and by finish time.
    assert await insights.throughput(T0 + HOUR, now + 1, HOUR) == buckets[1:]
    assert await insights.throughput(now + 1, now + 2, HOUR) == []

    stats = await insights.step_stats(T0, now + 1)
    assert stats == [
        # a: 0.1, 0.2 (failed), 0.4, 0.3 (failed), 0.1 -> sorted 0.1 0.1 0.2 0.3 0.4
        StepStats("order", "a", "step", 5, 3, pytest.approx(0.2), pytest.approx(0.4), pytest.approx(0.4)),  # type: ignore[arg-type]
        # b: 0.3, 0.5, 0.1 -> sorted 0.1 0.3 0.5
        StepStats("order", "b", "step", 3, 3, pytest.approx(0.3), pytest.approx(0.5), pytest.approx(0.5)),  # type: ignore[arg-type]
    ]
    assert await insights.step_stats(now + 1, now + 2) == []

    patterns = await insights.error_patterns(T0, now + 1)
    assert [(p.workflow, p.state, p.error_type, p.count, p.sample_run) for p in patterns] == [
        ("order", "a", "ValueError", 1, broken),
        ("order", "a", "ConnectionError", 1, retried),
    ]
    assert patterns[1].sample_message == "ConnectionError in run"
    assert patterns[1].first_seen == pytest.approx(T0 + HOUR + 0.2)
    assert len(await insights.error_patterns(T0, now + 1, limit=1)) == 1


async def test_compensation_attempts_are_counted_apart_from_step_attempts(
    store: Store, insights: Insights
) -> None:
    clock = ManualClock(T0)
    engine = Engine(app, store, None, clock)
    run = (await engine.start("refund", {})).run.id
    await step(engine, clock, run, 1, 1, 0.1)
    await step(engine, clock, run, 2, 1, 0.2, "ValueError", final=True)
    # b failed for good: a's compensation (token 3) fails once, then succeeds.
    await step(engine, clock, run, 3, 1, 0.3, "ConnectionError", kind=StepKind.COMPENSATION)
    await step(engine, clock, run, 3, 2, 0.4, kind=StepKind.COMPENSATION)
    now = clock.now()

    stats = await insights.step_stats(T0, now + 1)
    assert [(s.workflow, s.state, s.kind, s.attempts, s.succeeded) for s in stats] == [
        ("refund", "a", "compensation", 2, 1),
        ("refund", "a", "step", 1, 1),
        ("refund", "b", "step", 1, 0),
    ]
    patterns = await insights.error_patterns(T0, now + 1)
    assert sorted((p.state, p.error_type, p.count) for p in patterns) == [
        ("a", "ConnectionError", 1),
        ("b", "ValueError", 1),
    ]


async def test_error_patterns_group_by_type_and_keep_the_latest_sample(
    store: Store, insights: Insights
) -> None:
    clock = ManualClock(T0)
    engine = Engine(app, store, None, clock)
    runs = []
    for _ in range(3):
        run = (await engine.start("order", {})).run.id
        await step(engine, clock, run, 1, 1, 0.1, "TimeoutError", final=True)
        runs.append(run)
    [pattern] = await insights.error_patterns(T0, clock.now() + 1)
    assert (pattern.workflow, pattern.state, pattern.error_type, pattern.count) == (
        "order",
        "a",
        "TimeoutError",
        3,
    )
    assert pattern.first_seen == pytest.approx(T0 + 0.1)
    assert pattern.last_seen == pytest.approx(T0 + 0.3)
    assert (pattern.sample_message, pattern.sample_run) == ("TimeoutError in run", runs[-1])


async def test_error_patterns_split_a_type_by_the_pattern_of_its_message(
    store: Store, insights: Insights
) -> None:
    clock = ManualClock(T0)
    engine = Engine(app, store, None, clock)
    messages = [f"customer {n} not found" for n in (17, 2048, 99)] + ["customer 'x' is locked"]
    runs = []
    for message in messages:
        run = (await engine.start("order", {})).run.id
        await step(engine, clock, run, 1, 1, 0.1, "LookupError", final=True, message=message)
        runs.append(run)
    patterns = await insights.error_patterns(T0, clock.now() + 1)
    assert [(p.error_type, p.pattern, p.count) for p in patterns] == [
        ("LookupError", "customer <n> not found", 3),
        ("LookupError", "customer '*' is locked", 1),
    ]
    assert (patterns[0].sample_message, patterns[0].sample_run) == ("customer 99 not found", runs[2])
    assert patterns[0].first_seen == pytest.approx(T0 + 0.1)
    assert patterns[0].last_seen == pytest.approx(T0 + 0.3)
    # The limit counts patterns, not messages.
    assert [p.pattern for p in await insights.error_patterns(T0, clock.now() + 1, limit=1)] == [
        "customer <n> not found"
    ]


async def test_the_stamp_moves_with_every_change(store: Store, insights: Insights) -> None:
    clock = ManualClock(T0)
    engine = Engine(app, store, None, clock)
    before = await insights.stamp()
    run = (await engine.start("order", {})).run.id
    started = await insights.stamp()
    assert started.history > before.history
    await step(engine, clock, run, 1, 1, 0.1, "ValueError", final=True)
    failed = await insights.stamp()
    assert failed.history > started.history
    assert (failed.dead_letters, failed.open_dead_letters) == (before.dead_letters + 1, 1)
    [letter] = await store.list_dead_letters()
    await store.resolve_dead_letter(letter.id, "test", clock.now())
    assert (await insights.stamp()).open_dead_letters == 0
