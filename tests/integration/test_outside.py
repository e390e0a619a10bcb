"""Completion tokens and pause/resume with real worker processes on Postgres and
RabbitMQ, driven through the command line and the worker's HTTP server."""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

import aiohttp
import anyio
import orjson

from legato import Client, RunStatus
from legato.app import load_app
from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.postgres import PostgresStore
from tests.conftest import worker_env
from tests.integration.harness import eventually, spawn_worker

APP = "tests.apps.outside:app"
HTTP_TOKEN = "outside-test-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tokens(path: Path) -> list[tuple[int, str]]:
    """(attempt, token) of every completion token the handler handed out."""
    if not path.exists():
        return []
    return [(int(a), t) for a, t in (line.split() for line in path.read_text().splitlines())]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def legato(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await anyio.run_process([sys.executable, "-m", "legato", *args], env=env, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def kinds(client: Client, run_id: str) -> list[str]:
    return [str(e.kind) for e in await client.history(run_id)]


async def test_a_token_completed_from_the_cli_resumes_the_run_with_its_output_once(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    client = Client(pg_store, rabbit, load_app(APP), actor="test")
    env = worker_env(pg_schema, namespace, LEGATO_APP=APP)
    worker = spawn_worker(APP, env, log=tmp_path / "worker.log")
    try:
        handed = tmp_path / "tokens"
        run = await client.start("handoff", {"tokens": str(handed)})
        [(attempt, token)] = await eventually(lambda: tokens(handed), timeout=30)
        assert attempt == 1
        # The run waits: durably, with no worker holding anything.
        await eventually(lambda: _phase(client, run.id, "awaiting_completion"), timeout=30)
        code, out, err = await legato(env, "complete", token, "--output", '{"answer": 42}', "--json")
        assert code == 0, err
        assert orjson.loads(out)["id"] == run.id
        done = await client.result(run.id, timeout=30)
        assert done.status is RunStatus.SUCCEEDED, (tmp_path / "worker.log").read_text()
        assert done.data["answer"] == 42
        assert done.data["after_saw"] == 42  # the next step saw the output
        # A token is single-use: the second completion is refused, saying why.
        code, out, err = await legato(env, "complete", token, "--output", '{"answer": 43}')
        assert code == 1
        assert "completion token already used" in err
        assert "was completed at" in err
        assert "Traceback" not in err
        code, _, err = await legato(env, "fail", token, "--error", "too late")
        assert code == 1
        assert "already used" in err
        code, _, err = await legato(env, "complete", "lct.mistyped")
        assert code == 1
        assert "unknown completion token" in err
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    history = await client.history(run.id)
    received = [e for e in history if e.kind == "completion_received"]
    assert len(received) == 1
    assert str(received[0].actor).startswith("cli:")
    assert [str(e.kind) for e in history].count("step_succeeded") == 2  # ask, then after
    assert tokens(handed) == [(1, token)]  # the handler ran once


async def _phase(client: Client, run_id: str, phase: str) -> bool:
    run = await client.get(run_id)
    return any(t.phase.value == phase for t in run.tokens)


async def test_a_token_completed_and_failed_over_http(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    client = Client(pg_store, rabbit, load_app(APP), actor="test")
    port = free_port()
    env = worker_env(pg_schema, namespace, LEGATO_HTTP_TOKEN=HTTP_TOKEN)
    worker = spawn_worker(APP, env, "--http-port", str(port), log=tmp_path / "worker.log")
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {HTTP_TOKEN}"}
    try:
        failing, completing = tmp_path / "failing", tmp_path / "completing"
        failed_run = await client.start("handoff", {"tokens": str(failing), "marker": True})
        done_run = await client.start("handoff", {"tokens": str(completing)})
        [(_, first)] = await eventually(lambda: tokens(failing), timeout=30)
        [(_, token)] = await eventually(lambda: tokens(completing), timeout=30)
        async with aiohttp.ClientSession(headers=auth) as http:
            await eventually(lambda: _ready(http, url), timeout=60)
            async with http.post(f"{url}/tokens/{token}/complete", json={"answer": "yes"}) as answer:
                assert answer.status == 200, await answer.text()
                assert (await answer.json())["run"]["id"] == done_run.id
            async with http.post(f"{url}/tokens/{token}/complete", json={}) as answer:
                assert answer.status == 409
                assert "already used" in (await answer.json())["error"]
            async with http.post(f"{url}/tokens/lct.nope/complete") as answer:
                assert answer.status == 404
            async with http.post(f"{url}/tokens/{first}/fail", json={"nope": 1}) as answer:
                assert answer.status == 400
                assert "unknown field 'nope'" in (await answer.json())["error"]
            # Failing the token: the retry policy runs the handler again, with a new token.
            async with http.post(
                f"{url}/tokens/{first}/fail", json={"error": "declined", "type": "Declined"}
            ) as answer:
                assert answer.status == 200, await answer.text()
            [_, (attempt, second)] = await eventually(
                lambda: tokens(failing)[1:] and tokens(failing), timeout=30
            )
            assert attempt == 2
            assert second != first
            body = {"error": "declined again", "non_retryable": True}
            async with http.post(f"{url}/tokens/{second}/fail", json=body) as answer:
                assert answer.status == 200, await answer.text()
        done = await client.result(done_run.id, timeout=30)
        failed = await client.result(failed_run.id, timeout=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert done.status is RunStatus.SUCCEEDED
    assert done.data["after_saw"] == "yes"
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert (failed.error.type, failed.error.message) == ("ExternalError", "declined again")
    received = [e for e in await client.history(failed_run.id) if e.kind == "completion_received"]
    assert [(e.actor, e.detail["outcome"]) for e in received] == [("http", "failed"), ("http", "failed")]


async def _ready(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(f"{url}/readyz") as answer:
            return answer.status == 200
    except aiohttp.ClientError:
        return False


async def test_a_token_nobody_completes_times_out_and_is_retried_per_policy(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    client = Client(pg_store, rabbit, load_app(APP), actor="test")
    env = worker_env(pg_schema, namespace, LEGATO_APP=APP, LEGATO_TIMER_POLL_INTERVAL="0.1")
    worker = spawn_worker(APP, env, log=tmp_path / "worker.log")
    handed = tmp_path / "tokens"
    try:
        run = await client.start("handoff", {"tokens": str(handed), "timeout": 0.5})
        failed = await client.result(run.id, timeout=60)
        code, _, err = await legato(env, "complete", tokens(handed)[0][1])
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert failed.status is RunStatus.FAILED, (tmp_path / "worker.log").read_text()
    assert failed.error is not None
    assert failed.error.type == "CompletionTimeout"
    # Two attempts (max_attempts=2), each with its own token, each timed out once.
    assert [a for a, _ in tokens(handed)] == [1, 2]
    history = await kinds(client, run.id)
    assert history.count("completion_timed_out") == 2
    assert history.count("retry_scheduled") == 1
    assert "dead_lettered" in history
    assert code == 1
    assert "was timed out at" in err


async def test_pause_stops_new_steps_while_the_running_one_finishes_and_resume_continues(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    client = Client(pg_store, rabbit, load_app(APP), actor="test")
    env = worker_env(pg_schema, namespace, LEGATO_APP=APP)
    worker = spawn_worker(APP, env, log=tmp_path / "worker.log")
    log, gate = tmp_path / "log", tmp_path / "gate"
    try:
        run = await client.start("paced", {"log": str(log), "gate": str(gate)})
        await eventually(lambda: lines(log) == ["first 1"], timeout=30)
        code, out, err = await legato(env, "pause", run.id, "--reason", "looking", "--json")
        assert code == 0, err
        assert orjson.loads(out)["status"] == "paused"
        gate.touch()  # the running step finishes...
        await eventually(lambda: _held(client, run.id, "second"), timeout=30)
        paused = await client.get(run.id)
        assert paused.status is RunStatus.PAUSED
        assert paused.data["first"] is True  # ...and its result is recorded
        assert lines(log) == ["first 1"]  # ...but the next step did not start
        code, _, err = await legato(env, "pause", run.id)
        assert code == 1
        assert "paused already" in err
        code, out, err = await legato(env, "resume", run.id)
        assert code == 0, err
        done = await client.result(run.id, timeout=30)
        code, _, err = await legato(env, "resume", run.id)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert done.status is RunStatus.SUCCEEDED
    assert lines(log) == ["first 1", "second 1", "third 1"]  # each step once
    assert code == 1
    assert "finished run takes no resume" in err
    history = await client.history(run.id)
    actions = [
        (str(e.kind), str(e.actor)[:4]) for e in history if e.kind in ("operator_pause", "operator_resume")
    ]
    assert actions == [("operator_pause", "cli:"), ("operator_resume", "cli:")]
    [paused_line] = [e for e in history if e.kind == "operator_pause"]
    assert paused_line.detail["reason"] == "looking"
    assert paused_line.detail["running"] == ["first"]


async def _held(client: Client, run_id: str, state: str) -> bool:
    run = await client.get(run_id)
    return any(t.state == state and t.phase.value == "held" for t in run.tokens)


async def test_a_task_queued_before_the_pause_is_held_by_the_worker_and_runs_once_on_resume(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    client = Client(pg_store, rabbit, load_app(APP), actor="test")
    env = worker_env(pg_schema, namespace)
    log, gate = tmp_path / "log", tmp_path / "gate"
    gate.touch()
    # No worker yet: the first step's task waits in RabbitMQ while the run is paused.
    run = await client.start("paced", {"log": str(log), "gate": str(gate)})
    paused = await client.pause(run.id, "before it starts")
    assert paused.status is RunStatus.PAUSED
    worker = spawn_worker(APP, env, log=tmp_path / "worker.log")
    try:
        await eventually(lambda: _held(client, run.id, "first"), timeout=60)
        assert lines(log) == []  # the worker took the task and held it, unstarted
        await client.resume(run.id)
        done = await client.result(run.id, timeout=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert done.status is RunStatus.SUCCEEDED, (tmp_path / "worker.log").read_text()
    assert lines(log) == ["first 1", "second 1", "third 1"]
    assert (await kinds(client, run.id)).count("step_held") == 1
