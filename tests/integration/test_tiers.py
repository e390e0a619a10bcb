"""The unit tier needs no server; the tiers that need them fail, never skip, without them.

Both are shown without stopping the shared servers: a pytest subprocess gets
LEGATO_TEST_DATABASE_URL and LEGATO_TEST_BROKER_URL pointing at a local port
that refuses connections.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT

# The tiers whose conftest.py takes tests/shared_servers.py; every other tier is unit.
SERVER_TIERS = ["contract", "integration", "browser", "outages"]


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A local port bound but never listening: connecting is refused, and no one
    else can take the port while the test uses it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def pytest_without_servers(*args: str) -> subprocess.CompletedProcess[str]:
    with refused_port() as port:
        env = {
            **os.environ,
            "LEGATO_TEST_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/test",
            "LEGATO_TEST_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{port}/",
        }
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=100,
            check=False,
        )


def test_the_unit_tier_passes_with_no_server_there() -> None:
    result = pytest_without_servers("tests/unit")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " passed" in output
    assert "skipped" not in output
    assert "error" not in output.lower()


def test_every_tier_is_known_to_need_the_servers_or_not() -> None:
    tiers = {path.parent.name for path in (ROOT / "tests").glob("*/test_*.py")}
    assert tiers == {"unit", *SERVER_TIERS}


@pytest.mark.parametrize("tier", SERVER_TIERS)
def test_a_tier_that_needs_the_servers_fails_with_the_reason_when_they_are_down(tier: str) -> None:
    result = pytest_without_servers(f"tests/{tier}")
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "Postgres at postgresql://postgres@127.0.0.1:" in output
    assert "RabbitMQ at amqp://guest:guest@127.0.0.1:" in output
    assert output.count("is not reachable") == 2
    assert "run `make services`" in output
    assert " passed" not in output
    assert "skipped" not in output
