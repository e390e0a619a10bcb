"""Fuzz a real ``legato worker --http-port`` from its own OpenAPI document: no 5xx.

schemathesis draws requests from /openapi.json's schemas (and, negated,
outside them); every answer must be documented, shaped as documented, and
never a server error. The worker is a real process on Postgres and RabbitMQ.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from legato.http.openapi import document
from tests.conftest import unique, worker_env
from tests.integration.ingress import GITHUB_SECRET, TOKEN
from tests.shared_servers import delete_namespace, drop_schema

schema = schemathesis.openapi.from_dict(document())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pg_schema, namespace, port = unique("t"), unique("legato_t"), free_port()
    config = tmp_path_factory.mktemp("fuzz") / "legato.toml"
    config.write_text('[ingress]\nmax_body = 65536\nmax_wait = 1\n[webhooks.github]\nprovider = "github"\n')
    env = worker_env(
        pg_schema,
        namespace,
        LEGATO_CONFIG=str(config),
        LEGATO_HTTP_TOKEN=TOKEN,
        LEGATO_WEBHOOK_GITHUB_SECRET=GITHUB_SECRET,
    )
    log = Path(config.parent / "worker.log")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "legato", "worker", "tests.apps.ingress:app", "--http-port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(url):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        asyncio.run(drop_schema(pg_schema))
        asyncio.run(delete_namespace(namespace))
    assert "Traceback" not in log.read_text(), log.read_text()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: Any, base_url: str) -> None:
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
