"""``legato`` driven by a script: exit codes, ``--json`` answers, short run ids,
truncated lists and confirmations (docs/operations.md, "The CLI in scripts")."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
import pytest

from legato import RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.cli.exits import ExitCode
from legato.client import Client
from legato.machine.decide import start_run
from legato.store.postgres import PostgresStore
from tests.apps import recovery
from tests.conftest import PG_DSN, worker_env
from tests.integration.harness import running
from tests.integration.test_recovery import SETTINGS

APP = "tests.apps.recovery:app"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        value = orjson.loads(self.out)
        assert isinstance(value, dict), self.out
        return value


@dataclass
class Cli:
    env: dict[str, str]

    async def __call__(self, *args: str, answer: str | None = None) -> Result:
        done = await anyio.run_process(
            [sys.executable, "-m", "legato", *args],
            env=self.env,
            input=answer.encode() if answer is not None else None,
            check=False,
        )
        return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture
async def cli(pg_schema: str, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("RECOVERY_DSN", PG_DSN)
    recovery.FIXED["handler"] = False
    return Cli(worker_env(pg_schema, namespace, RECOVERY_DSN=PG_DSN, LEGATO_APP=APP))


async def test_start_wait_exits_with_how_the_run_ended(
    cli: Cli, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        ok = await cli("start", "retrying", "--wait", "30")
        assert (ok.code, ok.err.strip()) == (ExitCode.OK, "succeeded")
        failed = await cli("start", "declined", "--wait", "30")
        assert failed.code == ExitCode.RUN_FAILED, failed.err
        assert "failed: legato.errors.NonRetryableError: card declined" in failed.err
        undone = await cli("start", "saga", "--input", '{"fail_at": "s3"}', "--wait", "30")
        assert undone.code == ExitCode.RUN_COMPENSATED, undone.err

        waiting = await cli("start", "desk", "--key", "desk-1", "--wait", "0.5")
        assert waiting.code == ExitCode.STILL_RUNNING, waiting.err
        run_id = waiting.out.strip()
        assert f"run {run_id} is still running after 0.5 s; it goes on" in waiting.err
        assert "Traceback" not in waiting.err

        cancelled = await cli("cancel", run_id, "--json")
        assert cancelled.code == 0, cancelled.err
        assert cancelled.json()["status"] == "cancelled"
        again = await cli("start", "desk", "--key", "desk-1", "--wait", "5")
        assert (again.code, again.out.strip()) == (ExitCode.RUN_CANCELLED, run_id)


async def test_actions_answer_one_json_object_and_take_short_run_ids(
    cli: Cli, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    client = Client(pg_store, rabbit, recovery.app)
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        desk = await client.start("desk", {})
        signalled = await cli("signal", desk.id[:8], "approve", "--data", '{"by": "script"}', "--json")
        assert signalled.code == 0, signalled.err
        answer = signalled.json()
        assert (answer["id"], answer["status"]) == (desk.id, "succeeded")

        refused = await cli("retry", desk.id[:8], "--json")
        assert refused.code == ExitCode.ERROR
        assert f"run {desk.id} is succeeded" in str(refused.json()["error"])
        assert f"run {desk.id} is succeeded" in refused.err

        broken = await client.start("fragile", {"_schema": pg_schema})
        assert (await client.wait(broken.id, timeout=30)).status is RunStatus.FAILED
        skipped = await cli("skip", broken.id, "--output", '{"fixed_by_hand": true}', "--json")
        assert skipped.code == 0, skipped.err
        assert skipped.json()["status"] == "succeeded"

        retried = await client.start("fragile", {"_schema": pg_schema})
        assert (await client.wait(retried.id, timeout=30)).status is RunStatus.FAILED
        recovery.FIXED["handler"] = True
        again = await cli("retry", retried.id[:13], "--json")
        assert again.code == 0, again.err
        assert again.json()["id"] == retried.id


async def test_an_ambiguous_short_run_id_lists_the_runs_it_starts(cli: Cli, pg_store: PostgresStore) -> None:
    ids = ["3f2a1b4c-0000-4000-8000-000000000001", "3f2a1b4c-1000-4000-8000-000000000002"]
    for run_id in ids:
        await pg_store.create_run(start_run(recovery.desk, run_id, {}, 1_800_000_000.0))
    ambiguous = await cli("show", "3f2a1b4c")
    assert ambiguous.code == ExitCode.ERROR
    assert f"run id '3f2a1b4c' is ambiguous: it starts {ids[0]}, {ids[1]}; give more of it" in ambiguous.err
    assert "Traceback" not in ambiguous.err
    one = await cli("show", "3f2a1b4c-", "--json")
    assert one.code == ExitCode.ERROR  # still two
    shown = await cli("show", "3f2a1b4c-1", "--json")
    assert shown.json()["run"]["id"] == ids[1]
    unknown = await cli("cancel", "ffff0000", "--json")
    assert unknown.code == ExitCode.ERROR
    assert unknown.json() == {"error": "no run with id 'ffff0000'"}
    short = await cli("show", "3f2")
    assert "a short run id needs at least 4 characters" in short.err


async def test_lists_say_when_they_are_truncated_and_replay_answers_json(
    cli: Cli, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    client = Client(pg_store, rabbit, recovery.app)
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        runs = [await client.start("fragile", {"_schema": pg_schema}) for _ in range(3)]
        for run in runs:
            assert (await client.wait(run.id, timeout=30)).status is RunStatus.FAILED

        listed = await cli("runs", "--limit", "2", "--json")
        assert len(orjson.loads(listed.out)) == 2
        assert "showing 2 of 3; --limit to see more" in listed.err
        whole = await cli("runs", "--limit", "3")
        assert "showing" not in whole.err
        letters = await cli("dlq", "list", "--limit", "1")
        assert "showing 1 of 3; --limit to see more" in letters.err

        first, *_ = orjson.loads((await cli("dlq", "list", "--json")).out)
        recovery.FIXED["handler"] = True
        replayed = await cli("dlq", "replay", str(first["id"]), "--json")
        assert replayed.code == 0, replayed.err
        assert replayed.json() == {"replayed": [first["id"]], "refused": []}
        twice = await cli("dlq", "replay", str(first["id"]), "--json")
        assert twice.code == ExitCode.ERROR
        [refusal] = twice.json()["refused"]
        assert refusal["id"] == first["id"]
        assert "was replayed" in refusal["reason"]
        closed = await cli("dlq", "resolve", str(first["id"]), "--json")
        assert closed.code == ExitCode.ERROR
        assert "replayed" in closed.json()["error"]

        rest = await cli("dlq", "replay", "--all", "--workflow", "fragile")
        assert rest.code == 0, rest.err
        assert rest.out.splitlines()[-1] == "replayed 2, refused 0", (rest.out, rest.err)
        for run in runs:
            assert (await client.wait(run.id, timeout=30)).status is RunStatus.SUCCEEDED


async def test_purge_asks_with_the_count_it_will_delete(
    cli: Cli, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    client = Client(pg_store, rabbit, recovery.app)
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        for _ in range(2):
            run = await client.start("fragile", {"_schema": pg_schema})
            assert (await client.wait(run.id, timeout=30)).status is RunStatus.FAILED

    kept = await cli("dlq", "purge", answer="n\n")
    assert kept.code == ExitCode.ERROR
    assert "Delete 2 dead letters (open or resolved) and their copies in the dead-letter queue?" in kept.out
    assert await pg_store.count_dead_letters(status=None) == 2
    none_old = await cli("dlq", "purge", "--older-than", "1d", answer="y\n")
    assert "Delete 0 dead letters (older than 1d)" in none_old.out
    purged = await cli("dlq", "purge", answer="y\n")
    assert purged.code == 0, purged.err
    assert "purged 2 dead letters" in purged.out
    assert await pg_store.count_dead_letters(status=None) == 0


async def test_replay_all_groups_its_refusals_by_reason(
    cli: Cli, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    client = Client(pg_store, rabbit, recovery.app)
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        runs = [await client.start("saga", {"fail_at": "s2"}) for _ in range(2)]
        for run in runs:
            assert (await client.wait(run.id, timeout=30)).status is RunStatus.COMPENSATED
        letters = orjson.loads((await cli("dlq", "list", "--workflow", "saga", "--json")).out)
        assert len(letters) == 2
        refused = await cli("dlq", "replay", "--all", "--workflow", "saga")
    assert refused.code == ExitCode.ERROR
    assert refused.out.splitlines()[-1] == "replayed 0, refused 2"
    [line] = [line for line in refused.err.splitlines() if line.startswith("  refused")]
    ids = ", ".join(str(letter["id"]) for letter in sorted(letters, key=lambda letter: letter["id"]))
    assert line.startswith("  refused 2: "), line  # one line for both: the run ids are masked
    assert line.endswith(f"(dead letters {ids})"), line
    assert runs[0].id not in line
