"""Every way a run can end by every recovery action, through the ``legato`` command,
on real Postgres and RabbitMQ: the outcome (the run, its dead letter) and the message.

The runbook (docs/error-handling.md, "What to do for each ending") promises what
this table checks. "Deploy the fix, then replay" must hold whatever the workflow's
compensations; where a run cannot be resumed, the refusal says why and what to do
instead, and ``dlq resolve`` closes the dead letter without a replay.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import anyio
import orjson
import pytest

from legato import RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.machine.run import TERMINAL_STATUSES, Run
from legato.store.base import DeadLetterRecord
from legato.store.postgres import PostgresStore
from tests.apps import endings
from tests.conftest import worker_env
from tests.integration.harness import eventually, finished, running
from tests.integration.test_recovery import SETTINGS

APP = "tests.apps.endings:app"
NOBODY = "nobody.wants.this"
"""The routing key of the poison messages: an event no workflow is triggered by."""


@dataclass(frozen=True)
class Expect:
    code: int
    says: str
    """In the command's output; ``{run}`` and ``{letter}`` are filled in."""
    run: RunStatus | None
    """The run's status once it settled (None: there is no run)."""
    letter: str | None
    """The dead letter's status afterwards (None: there is none)."""
    closed_by: str | None = None
    """Who closed it: ``cli`` (the command) or ``test`` (the cancel that made the ending)."""


Cell = Expect | str
"""An expectation, or why the action does not apply to that ending."""

RESUMED = {
    "retry": Expect(0, "run {run}: running", RunStatus.SUCCEEDED, "replayed", "cli"),
    "replay": Expect(0, "replayed dead letter {letter}", RunStatus.SUCCEEDED, "replayed", "cli"),
    "replay_all": Expect(0, "replayed dead letter {letter}", RunStatus.SUCCEEDED, "replayed", "cli"),
    "skip": Expect(0, "run {run}: succeeded", RunStatus.SUCCEEDED, "resolved", "cli"),
}
"""A run that failed in a step, or waits at it: every way back works, and closes its dead letter."""

FAILED_IN_A_STEP: dict[str, Cell] = {
    **RESUMED,
    "cancel": Expect(
        1,
        "run {run} is failed; a finished run takes no cancel: retry or skip its failed step (charge), "
        "or resolve its dead letter to leave it failed",
        RunStatus.FAILED,
        "open",
    ),
    "resolve": Expect(0, "resolved dead letter {letter} (by cli:", RunStatus.FAILED, "resolved", "cli"),
}

UNDONE = (
    "run {run} is compensated: it failed (ValueError: bug in the handler) and what it had done "
    "was undone, so it cannot be resumed; start a new run instead"
)
CANCELLED = "run {run} is cancelled, so it cannot be resumed; start a new run instead"
MISSED = (
    "run {run} failed outside any step (DeadlineExceeded: run missed its deadline of 0.5s); "
    "it has no step to resume; start a new run instead"
)
NO_RUN = "n/a: a poison message has no run"
NO_LETTER = "n/a: a run that missed its deadline has no dead letter"

TABLE: dict[str, dict[str, Cell]] = {
    "failed": FAILED_IN_A_STEP,
    "failed_saga": FAILED_IN_A_STEP,
    "compensated": {
        "retry": Expect(1, UNDONE, RunStatus.COMPENSATED, "open"),
        "replay": Expect(
            1,
            "dead letter {letter}: " + UNDONE + "; resolve dead letter {letter} to close it without a replay",
            RunStatus.COMPENSATED,
            "open",
        ),
        "replay_all": Expect(1, UNDONE, RunStatus.COMPENSATED, "open"),
        "skip": Expect(1, UNDONE, RunStatus.COMPENSATED, "open"),
        "cancel": Expect(
            1, "run {run} is compensated; a finished run takes no cancel", RunStatus.COMPENSATED, "open"
        ),
        "resolve": Expect(0, "resolved dead letter {letter}", RunStatus.COMPENSATED, "resolved", "cli"),
    },
    "suspended": {
        **RESUMED,
        "cancel": Expect(0, "run {run}: cancelled", RunStatus.CANCELLED, "resolved", "cli"),
        "resolve": Expect(0, "resolved dead letter {letter}", RunStatus.SUSPENDED, "resolved", "cli"),
    },
    # Its cancel closed its dead letter already.
    "cancelled": {
        "retry": Expect(1, CANCELLED, RunStatus.CANCELLED, "resolved", "test"),
        "replay": Expect(
            1, "dead letter {letter} was resolved by test:setup", RunStatus.CANCELLED, "resolved", "test"
        ),
        "replay_all": Expect(0, "", RunStatus.CANCELLED, "resolved", "test"),
        "skip": Expect(1, CANCELLED, RunStatus.CANCELLED, "resolved", "test"),
        "cancel": Expect(
            1,
            "run {run} is cancelled; a finished run takes no cancel",
            RunStatus.CANCELLED,
            "resolved",
            "test",
        ),
        "resolve": Expect(
            1, "dead letter {letter} was resolved by test:setup", RunStatus.CANCELLED, "resolved", "test"
        ),
    },
    "timed_out": {
        "retry": Expect(1, MISSED, RunStatus.FAILED, None),
        "replay": NO_LETTER,
        "replay_all": Expect(0, "", RunStatus.FAILED, None),
        "skip": Expect(1, MISSED, RunStatus.FAILED, None),
        "cancel": Expect(1, "run {run} is failed; a finished run takes no cancel", RunStatus.FAILED, None),
        "resolve": NO_LETTER,
    },
    "poison": {
        "retry": NO_RUN,
        "replay": Expect(0, "replayed dead letter {letter}", None, "replayed", "cli"),
        "replay_all": Expect(0, "replayed dead letter {letter}", None, "replayed", "cli"),
        "skip": NO_RUN,
        "cancel": NO_RUN,
        "resolve": Expect(0, "resolved dead letter {letter} (by cli:", None, "resolved", "cli"),
    },
}

ENDED_AS = {
    "failed": RunStatus.FAILED,
    "failed_saga": RunStatus.FAILED,
    "compensated": RunStatus.COMPENSATED,
    "suspended": RunStatus.SUSPENDED,
    "cancelled": RunStatus.SUSPENDED,  # then cancelled
    "timed_out": RunStatus.FAILED,
}


@dataclass
class Subject:
    """What one cell acts on: a run and its dead letter, or a poison message's dead letter."""

    ending: str
    action: str
    run: Run | None
    letter: DeadLetterRecord | None


def test_the_table_covers_every_ending_and_every_action() -> None:
    assert set(TABLE) == {*endings.ENDINGS, "poison"}
    assert all(set(row) == set(endings.ACTIONS) for row in TABLE.values())


async def test_every_ending_times_every_recovery_action(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str
) -> None:
    endings.FIXED["handler"] = False
    env = worker_env(pg_schema, namespace, LEGATO_APP=APP)
    client = Client(pg_store, rabbit, endings.app, actor="test:setup")
    async with running(endings.app, pg_store, rabbit, SETTINGS):
        subjects = await _endings(client, rabbit)
        endings.FIXED["handler"] = True  # the fix is deployed
        last = [s for s in subjects if (s.ending, s.action) == ("poison", "replay_all")]
        mismatches: list[str] = []
        limiter = anyio.CapacityLimiter(4)

        async def one(subject: Subject) -> None:
            async with limiter:
                mismatches.extend(await _check(client, pg_store, env, subject))

        async with anyio.create_task_group() as group:
            for subject in subjects:
                if subject not in last:
                    group.start_soon(one, subject)
        # Last: `replay --all` without --workflow replays whatever is still open.
        for subject in last:
            await one(subject)
        resolved = await _cli(env, "dlq", "resolve", "--json", str(await _poison_letter(client)))
    assert mismatches == [], "\n".join(mismatches)
    shown = orjson.loads(resolved[1])
    assert (shown["status"], shown["resolved_by"].split(":")[0]) == ("resolved", "cli"), resolved


async def _endings(client: Client, rabbit: RabbitMQBroker) -> list[Subject]:
    """Bring a run of each (ending, action) workflow to its ending; one poison message per action."""
    started = {
        (ending, action): await client.start(endings.workflow_name(ending, action), {})
        for ending in endings.ENDINGS
        for action in endings.ACTIONS
    }
    for (ending, _), run in started.items():
        await eventually(functools.partial(_status, client, run.id, ENDED_AS[ending]))
        if ending == "cancelled":
            await client.cancel(run.id, compensate=False, reason="given up")
    for action in endings.ACTIONS:
        await rabbit.publish_event(NOBODY, b"{}", message_id=f"poison-{action}")
    poison = await eventually(lambda: _poison(client, len(endings.ACTIONS)))
    subjects = [
        Subject(ending, action, await client.get(run.id), await _letter_of(client, run))
        for (ending, action), run in started.items()
    ]
    subjects += [Subject("poison", action, None, poison[f"poison-{action}"]) for action in endings.ACTIONS]
    for subject in subjects:
        # The preconditions: each ending is what it says, with an open dead letter where it has one.
        if subject.run is not None:
            ended = RunStatus.CANCELLED if subject.ending == "cancelled" else ENDED_AS[subject.ending]
            assert subject.run.status is ended, subject
        assert (subject.letter is not None) is (subject.ending != "timed_out"), subject
    return subjects


async def _status(client: Client, run_id: str, status: RunStatus) -> bool:
    return (await client.get(run_id)).status is status


async def _poison(client: Client, count: int) -> dict[str, DeadLetterRecord] | None:
    """The poison dead letters by message id, once there are ``count``."""
    found = {
        str((d.message or {}).get("message_id")): d
        for d in await client.dead_letters(limit=1000)
        if d.source == "message"
    }
    return found if len(found) >= count else None


async def _poison_letter(client: Client) -> int:
    await client.publish_event(NOBODY, {}, message_id="poison-json")
    found: dict[str, DeadLetterRecord] = await eventually(lambda: _poison(client, 1))
    return found["poison-json"].id


async def _letter_of(client: Client, run: Run) -> DeadLetterRecord | None:
    letters = [d for d in await client.dead_letters(run.workflow, status=None) if d.run_id == run.id]
    assert len(letters) <= 1, letters
    return letters[0] if letters else None


def _args(subject: Subject) -> list[str]:
    run = subject.run.id if subject.run else ""
    letter = str(subject.letter.id) if subject.letter else ""
    workflow = ["--workflow", subject.run.workflow] if subject.run else []
    return {
        "retry": ["retry", run],
        "replay": ["dlq", "replay", letter],
        "replay_all": ["dlq", "replay", "--all", *workflow],
        "skip": ["skip", run],
        "cancel": ["cancel", run],
        "resolve": ["dlq", "resolve", letter],
    }[subject.action]


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await anyio.run_process([sys.executable, "-m", "legato", *args], env=env, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def _check(client: Client, store: PostgresStore, env: dict[str, str], subject: Subject) -> list[str]:
    """Run the cell's command; what differs from its expectation, as lines."""
    cell = TABLE[subject.ending][subject.action]
    where = f"{subject.ending} x {subject.action}"
    if isinstance(cell, str):
        return []  # the preconditions showed there is nothing to act on
    code, out, err = await _cli(env, *_args(subject))
    said = out + err
    ids = {
        "run": subject.run.id if subject.run else "",
        "letter": subject.letter.id if subject.letter else "",
    }
    problems = []
    if code != cell.code:
        problems.append(f"{where}: exit {code}, expected {cell.code}: {said.strip()}")
    if cell.says.format(**ids) not in said:
        problems.append(f"{where}: said {said.strip()!r}, expected {cell.says.format(**ids)!r}")
    if "Traceback" in said:
        problems.append(f"{where}: a traceback: {said}")
    if subject.run is not None:
        run = await client.get(subject.run.id)
        if cell.run in TERMINAL_STATUSES and run.status is not cell.run:
            run = await finished(store, subject.run.id, timeout=30)
        if run.status is not cell.run:
            problems.append(f"{where}: the run is {run.status.value}, expected {cell.run}")
    if subject.letter is not None:
        letter = await client.dead_letter(subject.letter.id)
        closer = (letter.resolved_by or "").split(":")[0] or None
        if (letter.status, closer if letter.status != "open" else None) != (cell.letter, cell.closed_by):
            problems.append(
                f"{where}: the dead letter is {letter.status} by {letter.resolved_by}, "
                f"expected {cell.letter} by {cell.closed_by}"
            )
    return problems


@pytest.fixture(autouse=True)
def _unfixed() -> None:
    endings.FIXED["handler"] = False
