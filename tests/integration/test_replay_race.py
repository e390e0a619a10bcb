"""Two operators replay the same dead letter at the same moment, on real Postgres:
one resumes the run, the other is told ``dead letter N was replayed by …``."""

from __future__ import annotations

import anyio

from legato import App, OperationRefused, RetryPolicy, RunStatus, StepContext, Task, Workflow
from legato.client import Client
from legato.machine.errors import ErrorInfo
from legato.machine.events import StepFailed
from legato.machine.run import Run
from legato.machine.vocabulary import HistoryKind
from legato.store.postgres import PostgresStore

ROUNDS = 40


async def charge(ctx: StepContext) -> None:
    raise AssertionError("no worker runs in this test")


# With a compensation: the case whose failed runs could not be replayed at all before.
APP = App(
    [
        Workflow(
            "race",
            start="charge",
            states={"charge": Task(charge, compensate=charge, retry=RetryPolicy.none())},
        )
    ]
)


async def failed_run(client: Client) -> tuple[Run, int]:
    """A run whose only step failed for good (as a worker would report it), and its dead letter."""
    run = await client.start("race", {})
    [token] = run.tokens
    await client.engine.apply(run.id, StepFailed(token.seq, 1, ErrorInfo.of("ValueError", "bug")))
    [letter] = [d for d in await client.dead_letters("race", limit=1000) if d.run_id == run.id]
    return run, letter.id


async def race(letter: int, *clients: Client) -> dict[str, Run | OperationRefused]:
    """Replay ``letter`` from every client at once: what each got."""
    outcomes: dict[str, Run | OperationRefused] = {}

    async def replay(client: Client) -> None:
        try:
            replayed = await client.replay(letter)
            assert replayed is not None  # a step's dead letter: its run
            outcomes[client.actor] = replayed
        except OperationRefused as exc:
            outcomes[client.actor] = exc

    async with anyio.create_task_group() as group:
        for client in clients:
            group.start_soon(replay, client)
    return outcomes


async def test_of_two_concurrent_replays_exactly_one_wins_and_the_other_is_told_who_won(
    pg_store: PostgresStore,
) -> None:
    setup = Client(pg_store, None, APP, actor="test:setup")
    failed = [await failed_run(setup) for _ in range(ROUNDS)]
    # Two operators, each with their own engine: nothing in this process orders them.
    alice = Client(pg_store, None, APP, actor="ops:alice")
    bob = Client(pg_store, None, APP, actor="ops:bob")
    for run, letter in failed:
        outcomes = await race(letter, alice, bob)
        [winner] = [actor for actor, o in outcomes.items() if isinstance(o, Run)]
        [loser] = [o for o in outcomes.values() if isinstance(o, OperationRefused)]
        assert str(loser) == f"dead letter {letter} was replayed by {winner}"
        record = await setup.dead_letter(letter)
        assert (record.status, record.resolved_by) == ("replayed", winner)
        resumed = await setup.get(run.id)
        assert resumed.status is RunStatus.RUNNING
        retries = [e for e in await pg_store.history(run.id) if e.kind == HistoryKind.OPERATOR_RETRY]
        assert [e.actor for e in retries] == [winner]
