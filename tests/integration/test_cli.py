"""The ``legato`` command, run as a process against the real servers."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import orjson
import pytest

from legato import RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.store.postgres import PostgresStore
from tests.apps import recovery
from tests.conftest import PG_DSN, worker_env
from tests.integration.harness import eventually, running
from tests.integration.test_recovery import SETTINGS, _awaiting

APP = "tests.apps.recovery:app"


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    env: dict[str, str]

    async def __call__(self, *args: str) -> Result:
        done = await anyio.run_process([sys.executable, "-m", "legato", *args], env=self.env, check=False)
        return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture
async def cli(
    pg_store: PostgresStore, pg_schema: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> Cli:
    monkeypatch.setenv("RECOVERY_DSN", PG_DSN)
    recovery.FIXED["handler"] = False
    return Cli(worker_env(pg_schema, namespace, RECOVERY_DSN=PG_DSN, LEGATO_APP=APP))


async def test_start_runs_show_and_operator_commands(
    cli: Cli, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    client = Client(pg_store, rabbit, recovery.app)
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        started = await cli(
            "start", "desk", "--input", orjson.dumps({"_schema": pg_schema}).decode(), "--key", "k-1"
        )
        assert started.code == 0, started.err
        run_id = started.out.strip()
        again = await cli("start", "desk", "--input", "{}", "--key", "k-1")
        assert again.out.strip() == run_id  # the same key returns the first run
        await eventually(lambda: _awaiting(client, run_id))

        listed = await cli("runs", "--workflow", "desk", "--json")
        assert [r["id"] for r in orjson.loads(listed.out)] == [run_id]
        other = await cli("start", "desk", "--input", '{"ticket": {"id": 42}}')
        for filters, found in (
            (("--where", f"_schema={pg_schema}"), [run_id]),
            (("--where", "ticket.id=42"), [other.out.strip()]),
            (("--where", "ticket.id=42", "--where", f"_schema={pg_schema}"), []),
            (("--key", "desk:k-1"), [run_id]),  # as stored: a start key is per workflow
            (("--since", "1h", "--until", "2999-01-01T00:00:00Z", "--key", "desk:k-1"), [run_id]),
            (("--until", "1h", "--key", "desk:k-1"), []),
        ):
            searched = await cli("runs", *filters, "--json")
            assert [r["id"] for r in orjson.loads(searched.out)] == found, (filters, searched.err)
        wrong = await cli("signal", run_id, "nope")
        assert wrong.code == 1
        assert "not waiting for signal 'nope'; it waits for 'approve'" in wrong.err
        assert "Traceback" not in wrong.err
        refused = await cli("retry", run_id)
        assert refused.code == 1
        assert "only a suspended or failed run can be given a retry" in refused.err
        signalled = await cli("signal", run_id, "approve", "--data", '{"by": "cli"}')
        assert signalled.code == 0, signalled.err
        assert "succeeded" in signalled.out

        shown = orjson.loads((await cli("show", run_id, "--json")).out)
        assert shown["run"]["status"] == "succeeded"
        assert shown["run"]["data"]["by"] == "cli"
        signal = next(h for h in shown["history"] if h["kind"] == "signal_received")
        assert signal["actor"].startswith("cli:")
        table = await cli("show", run_id)
        assert "signal_received" in table.out


async def test_dead_letters_from_the_command_line(
    cli: Cli, pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str
) -> None:
    client = Client(pg_store, rabbit, recovery.app)
    async with running(recovery.app, pg_store, rabbit, SETTINGS):
        runs = [await client.start("fragile", {"_schema": pg_schema}) for _ in range(2)]
        for run in runs:
            assert (await client.wait(run.id, timeout=30)).status is RunStatus.FAILED

        grouped = orjson.loads((await cli("dlq", "list", "--group-by", "error", "--json")).out)
        assert [(g["key"], g["count"]) for g in grouped] == [("ValueError: bug in the handler", 2)]
        letters = orjson.loads((await cli("dlq", "list", "--json")).out)
        assert {letter["run_id"] for letter in letters} == {r.id for r in runs}
        first = letters[0]["id"]
        shown = await cli("dlq", "show", str(first))
        assert "bug in the handler" in shown.out

        recovery.FIXED["handler"] = True
        replayed = await cli("dlq", "replay", str(first))
        assert replayed.code == 0, replayed.err
        twice = await cli("dlq", "replay", str(first))
        assert twice.code == 1
        assert "was replayed" in twice.err
        rest = await cli("dlq", "replay", "--all", "--workflow", "fragile")
        assert rest.code == 0, rest.err
        for run in runs:
            assert (await client.wait(run.id, timeout=30)).status is RunStatus.SUCCEEDED
        assert orjson.loads((await cli("dlq", "list", "--json")).out) == []
        everything = orjson.loads((await cli("dlq", "list", "--all", "--json")).out)
        assert {letter["status"] for letter in everything} == {"replayed"}

    kept = await cli("dlq", "purge", "--older-than", "1d", "--yes")
    assert "purged 0 dead letters" in kept.out
    purged = await cli("dlq", "purge", "--yes")
    assert "purged 2 dead letters and 2 messages" in purged.out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("start", "gate", "--input", "[1, 2]"), 2, "must be a JSON object"),
        (("start", "gate", "--input", "{oops"), 2, "not valid JSON"),
        (
            ("start", "nope"),
            1,
            "unknown workflow 'nope'; registered: declined, desk, fragile, gate, retrying, saga",
        ),
        (("start", "gate", "--priority", "urgent"), 2, "'urgent' is not one of"),
        (("show", "00000000-0000-0000-0000-000000000000"), 1, "no run with id"),
        (("dlq", "show", "999999"), 1, "no dead letter with id 999999"),
        (("dlq", "replay"), 2, "give a dead letter ID or --all"),
        (("dlq", "purge", "--older-than", "soon", "--yes"), 2, "is not a duration"),
        (("runs", "--limit", "0"), 2, "0 is not in the range"),
        (("runs", "--where", "customer..id=1"), 2, "has an empty key"),
        (("runs", "--where", "customer.id"), 2, "is not PATH=VALUE"),
        (("runs", "--since", "yesterday"), 2, "neither an ISO time"),
        (("worker", "tests.apps.nope:app"), 1, "cannot import module 'tests.apps.nope'"),
        (("nonsense",), 2, "No such command 'nonsense'"),
    ],
)
async def test_bad_input_gets_a_one_line_error_not_a_traceback(
    cli: Cli, args: tuple[str, ...], code: int, message: str
) -> None:
    result = await cli(*args)
    assert result.code == code, result.err
    assert message in result.err
    assert "Traceback" not in result.err


async def test_an_unreachable_server_says_what_to_fix(cli: Cli) -> None:
    down = Cli({**cli.env, "LEGATO_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test"})
    result = await down("runs")
    assert result.code == 1
    assert "cannot connect to Postgres at postgresql://postgres@127.0.0.1:1/test" in result.err
    assert "check LEGATO_DATABASE_URL" in result.err
    assert "Traceback" not in result.err
    # A worker waits for servers that are starting (startup_timeout); not this long here.
    broker_down = Cli(
        {**cli.env, "LEGATO_BROKER_URL": "amqp://guest:secret@127.0.0.1:1/", "LEGATO_STARTUP_TIMEOUT": "2"}
    )
    result = await broker_down("worker", APP)
    assert result.code == 1
    assert "cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:1/" in result.err
    assert "secret" not in result.err


async def test_migrate_and_graph(cli: Cli) -> None:
    migrated = await cli("migrate")
    assert migrated.out.strip() == "the schema is up to date"
    graph = await cli("graph", "saga")
    assert graph.out.startswith("stateDiagram-v2")
    assert "s3 --> s4" in graph.out


async def test_the_demo_runs_on_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGATO_")}
    done = await anyio.run_process(
        [sys.executable, "-m", "legato", "--log-level", "warning", "demo", "--db", str(tmp_path / "demo.db")],
        env=env,
        check=False,
    )
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "6 events published" in out
    assert out.count("succeeded") >= 3
    assert "compensated" in out
    assert "the carrier does not deliver to 'nowhere'" in out
    assert "not valid" in out  # the malformed event, dead-lettered (the table may wrap the reason)
    # The schedule fired at its tick, reached by the demo's fast-forwarded clock.
    assert "Schedule daily-report" in out
    assert "it fired" in out
    assert "(succeeded), key daily-report:schedule:daily-report:" in out
