"""``legato dashboard`` as a command: it starts, serves, and refuses an unsafe bind."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp
import anyio

from tests.conftest import ROOT
from tests.integration.harness import eventually
from tests.integration.test_metrics import free_port


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    found = {k: v for k, v in os.environ.items() if not k.startswith(("LEGATO_", "OTEL_"))}
    found.update(
        LEGATO_EMBEDDED_PATH=str(tmp_path / "legato.db"),
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **extra,
    )
    return found


def spawn_dashboard(tmp_path: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "legato",
                "--app",
                "tests.apps.shop:app",
                "dashboard",
                "--port",
                str(port),
            ],
            env=env(tmp_path),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def test_binding_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "legato", "dashboard", "--host", "0.0.0.0"],
        env=env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "LEGATO_HTTP_TOKEN" in done.stderr


def test_binding_beyond_loopback_with_a_short_token_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "legato", "dashboard", "--host", "0.0.0.0"],
        env=env(tmp_path, LEGATO_HTTP_TOKEN="hunter2"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "LEGATO_HTTP_TOKEN has 7 characters" in done.stderr
    assert "at least 16" in done.stderr
    assert "Traceback" not in done.stderr


def read_token(path: Path) -> tuple[int, str]:
    return stat.S_IMODE(path.stat().st_mode), path.read_text().strip()


async def test_the_dashboard_command_serves_the_page_and_api(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "dashboard.log"
    process = spawn_dashboard(tmp_path, port, log)
    base = f"http://127.0.0.1:{port}"
    try:

        async def up() -> str | None:
            match = re.search(r"actions need the token in (\S+) ", log.read_text())
            return match.group(1) if match else None

        # The made-up token is in a file only its owner can read; the log names the file, never the token.
        path = Path(await eventually(up, timeout=30))
        assert path == (tmp_path / "dashboard-token").resolve()
        mode, token = read_token(path)
        assert mode == 0o600
        assert len(token) >= 16
        assert token not in log.read_text()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/") as page:
                assert page.status == 200
                assert "legato dashboard" in await page.text()
            async with session.get(f"{base}/api/overview?range=1h") as overview:
                assert overview.status == 200
                assert (await overview.json())["statuses"] == {}
            async with session.get(f"{base}/api/workflows") as workflows:
                assert sorted(w["name"] for w in await workflows.json()) == ["approval", "order"]
            async with session.post(f"{base}/api/runs/nope/retry") as refused:
                assert refused.status == 401
            async with session.post(
                f"{base}/api/runs/nope/retry", headers={"Authorization": f"Bearer {token}"}
            ) as missing:
                assert missing.status == 404
    finally:
        process.send_signal(signal.SIGTERM)
        code = await anyio.to_thread.run_sync(process.wait)
    assert code == 0, log.read_text()
