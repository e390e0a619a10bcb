"""docs/quickstart.md followed as a new user would: its `shop.py` saved as printed, its
commands run in a shell of their own against the real Postgres and RabbitMQ."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import orjson

from tests.conftest import worker_env
from tests.integration.harness import eventually

QUICKSTART = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"


async def legato(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = await anyio.run_process([sys.executable, "-m", "legato", *args], cwd=cwd, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def start_worker(directory: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """As in section 3: `legato worker shop:app` in the directory holding shop.py."""
    with (directory / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "legato", "worker", "shop:app", "--concurrency", "8"],
            cwd=directory,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def test_the_quickstart_shop_runs_on_postgres_and_rabbitmq(
    tmp_path: Path, pg_schema: str, namespace: str
) -> None:
    shop = re.findall(r"```python\n(.*?)```", QUICKSTART.read_text(), re.DOTALL)[0]
    (tmp_path / "shop.py").write_text(shop)
    env = worker_env(pg_schema, namespace, LEGATO_APP="shop:app")
    worker = start_worker(tmp_path, env)
    try:
        # The trigger queue is bound once the worker says it started (an event before that has no queue).
        await eventually(lambda: "worker started" in (tmp_path / "worker.log").read_text(), timeout=60)
        for n, email in enumerate(("ada@example.com", "grace@example.com")):
            body = orjson.dumps({"email": email}).decode()
            await legato(
                tmp_path, env, "publish", "user.signed_up", "--body", body, "--message-id", f"signup-{n}"
            )

        async def both_finished() -> list[dict[str, object]] | None:
            runs: list[dict[str, object]] = orjson.loads(await legato(tmp_path, env, "runs", "--json"))
            return runs if len(runs) == 2 and all(r["status"] != "running" for r in runs) else None

        runs = await eventually(both_finished, timeout=60, interval=0.3)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    worker_log = (tmp_path / "worker.log").read_text()
    assert {r["status"] for r in runs} == {"succeeded"}, worker_log
    assert "NameError" not in worker_log
    shown = orjson.loads(await legato(tmp_path, env, "show", str(runs[0]["id"])[:8], "--json"))
    assert shown["run"]["data"]["welcomed"] is True
