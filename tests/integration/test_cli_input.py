"""Input that cannot hurt, through the real ``legato`` command on real Postgres:
an identifier cannot inject SQL, a database without legato's schema and an
unusable URL get one clear line, and no secret in a URL is ever printed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import anyio
import asyncpg
import pytest

from tests.conftest import AMQP_URL, PG_DSN, ROOT, unique, worker_env
from tests.integration.harness import eventually, spawn_worker
from tests.integration.test_metrics import free_port, get
from tests.shared_servers import delete_namespace, drop_schema

SECRET = "hunter2-never-printed"
NO_SCHEMA = "the database at {url} (schema '{schema}') has no legato schema; run `legato migrate`"
ZERO = "00000000-0000-0000-0000-000000000000"


def env(**extra: str) -> dict[str, str]:
    found = {k: v for k, v in os.environ.items() if not k.startswith(("LEGATO_", "OTEL_"))}
    found.update(PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra)
    return found


def legato(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "legato", *args], env=environment, capture_output=True, text=True, timeout=60
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The command failed with one line on stderr, no traceback; that line."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("Error:", "not replayed:"))]
    assert len(errors) == 1, done.stderr
    return errors[0]


def spawn(environment: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "legato", *args], env=environment, stdout=output, stderr=subprocess.STDOUT
        )


@pytest.fixture
def unmigrated() -> Iterator[str]:
    """A schema name nothing ever migrated (dropped after, in case a bug created it)."""
    name = unique("t")
    yield name
    anyio.run(drop_schema, name)


async def test_a_schema_name_that_injects_sql_creates_nothing() -> None:
    table = f"x_{uuid.uuid4().hex[:12]}"
    evil = f'a,"; CREATE TABLE public.{table}(i int); COMMIT; --"'
    done = await anyio.to_thread.run_sync(
        lambda: legato(env(LEGATO_DATABASE_URL=PG_DSN, LEGATO_DATABASE_SCHEMA=evil), "migrate")
    )
    line = one_line_error(done)
    assert "is not a valid name" in line
    assert "LEGATO_DATABASE_SCHEMA" in line
    conn = await asyncpg.connect(PG_DSN)
    try:
        made = await conn.fetchval("SELECT to_regclass($1)", f"public.{table}")
        schemas = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'a,%'")
    finally:
        await conn.close()
    assert made is None
    assert schemas == 0


COMMANDS = [
    ("runs",),
    ("show", ZERO),
    ("dlq", "list"),
    ("dlq", "list", "--group-by", "error"),
    ("dlq", "show", "1"),
    ("dlq", "replay", "1"),
    ("dlq", "replay", "--all"),
    ("dlq", "purge", "--yes"),
    ("retry", ZERO),
    ("skip", ZERO),
    ("cancel", ZERO),
    ("signal", ZERO, "approve"),
    ("start", "desk"),
    ("schedule", "list"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_every_command_on_a_database_without_the_schema_says_to_migrate(
    args: tuple[str, ...], unmigrated: str
) -> None:
    environment = env(
        LEGATO_DATABASE_URL=PG_DSN,
        LEGATO_DATABASE_SCHEMA=unmigrated,
        LEGATO_APP="tests.apps.recovery:app",
    )
    line = one_line_error(legato(environment, *args))
    assert NO_SCHEMA.format(url=PG_DSN, schema=unmigrated) in line


async def test_the_dashboard_answers_503_on_a_database_without_the_schema(
    unmigrated: str, tmp_path: Path
) -> None:
    """...with the URL's secrets masked (Postgres trusts the tests: the password is ignored)."""
    port = free_port()
    log = tmp_path / "dashboard.log"
    environment = env(
        LEGATO_DATABASE_URL=f"{PG_DSN}?password={SECRET}",
        LEGATO_DATABASE_SCHEMA=unmigrated,
        LEGATO_HTTP_TOKEN="a-token-of-at-least-16-characters",
    )
    process = spawn(environment, log, "dashboard", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:

        async def up() -> bool:
            try:
                await get(f"{base}/")
            except aiohttp.ClientError:
                return False
            return True

        await eventually(up, timeout=30)
        answers = [await get(f"{base}{path}") for path in ("/api/overview", "/api/runs", "/api/dead-letters")]
    finally:
        process.send_signal(signal.SIGTERM)
        await anyio.to_thread.run_sync(process.wait)
    expected = NO_SCHEMA.format(url=f"{PG_DSN}?password=***", schema=unmigrated)
    for status, text in answers:
        assert status == 503, text
        assert expected in text
        assert SECRET not in text
    assert "Traceback" not in log.read_text()
    assert SECRET not in log.read_text()


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"LEGATO_DATABASE_URL": "mysql://db/app"}, "the scheme 'mysql' is not supported"),
        ({"LEGATO_DATABASE_URL": "postgresql://127.0.0.1:abc/test"}, "the port is not a number"),
        ({"LEGATO_DATABASE_URL": "postgresql://[::1/test"}, "Invalid IPv6 URL"),
        ({"LEGATO_BROKER_URL": "kafka://mq"}, "the scheme 'kafka' is not supported"),
        ({"LEGATO_BROKER_URL": "amqp://127.0.0.1:abc/"}, "the port is not a number"),
        ({"LEGATO_BROKER_URL": f"amqp://guest:{SECRET}@[mq/?password={SECRET}"}, "Invalid IPv6 URL"),
    ],
)
def test_an_unusable_url_is_one_line(variables: dict[str, str], expected: str) -> None:
    line = one_line_error(legato(env(**variables), "runs"))
    assert expected in line
    assert SECRET not in line


def test_a_connection_error_never_prints_a_password_in_any_form() -> None:
    url = f"postgresql://app:{SECRET}@127.0.0.1:1/test?password={SECRET}&sslpassword={SECRET}"
    done = legato(env(LEGATO_DATABASE_URL=url), "runs")
    line = one_line_error(done)
    assert "cannot connect to Postgres at postgresql://app:***@127.0.0.1:1/test?password=***" in line
    assert SECRET not in done.stderr + done.stdout


async def test_a_worker_never_logs_a_password_given_in_the_url_query(tmp_path: Path) -> None:
    """At debug level, at start, in /metrics: the query's password is masked
    (Postgres trusts the tests' connections, so the password is ignored)."""
    schema, namespace, port = unique("t"), unique("legato_t"), free_port()
    log = tmp_path / "worker.log"
    environment = worker_env(
        schema,
        namespace,
        LEGATO_DATABASE_URL=f"{PG_DSN}?password={SECRET}",
        LEGATO_BROKER_URL=f"{AMQP_URL.rstrip('/')}/?password={SECRET}",
        LEGATO_LOG_LEVEL="debug",
    )
    process = spawn_worker("tests.apps.traced:app", environment, "--http-port", str(port), log=log)
    base = f"http://127.0.0.1:{port}"
    try:

        async def ready() -> bool:
            try:
                return (await get(f"{base}/readyz"))[0] == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, timeout=60)
        status, metrics = await get(f"{base}/metrics")
    finally:
        process.send_signal(signal.SIGTERM)
        await anyio.to_thread.run_sync(process.wait)
        await drop_schema(schema)
        await delete_namespace(namespace)
    written = log.read_text()
    assert status == 200
    assert "legato worker on" in written
    assert "password=***" in written
    assert SECRET not in written
    assert SECRET not in metrics


async def test_a_worker_not_to_migrate_on_a_database_without_the_schema_stops_with_one_line(
    unmigrated: str,
) -> None:
    namespace = unique("legato_t")
    environment = worker_env(unmigrated, namespace)
    try:
        done = await anyio.to_thread.run_sync(
            lambda: legato(environment, "worker", "tests.apps.shop:app", "--no-migrate")
        )
    finally:
        await delete_namespace(namespace)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert NO_SCHEMA.format(url=PG_DSN, schema=unmigrated) in done.stderr.splitlines()[-1]
