"""``legato worker --processes N``: a supervisor of real worker processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import anyio

from legato.broker.rabbitmq import RabbitMQBroker
from legato.store.postgres import PostgresStore
from tests.conftest import worker_env
from tests.integration.harness import all_runs, eventually, spawn_worker, wait_finished
from tests.integration.test_processes import APP, assert_each_transition_once, publish_orders

STARTED = re.compile(r"worker process (\d) started \(pid (\d+)\)")


def children(log: Path) -> dict[int, list[int]]:
    """Pids each slot was started with, in order, from the supervisor's log."""
    found: dict[int, list[int]] = {}
    for slot, pid in STARTED.findall(log.read_text()):
        found.setdefault(int(slot), []).append(int(pid))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; the supervisor reaps it.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


async def test_a_killed_child_is_restarted_and_every_run_finishes_once(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    env = worker_env(pg_schema, namespace, SHOP_STEP_SLEEP="0.02", LEGATO_RELAY_GRACE="1")
    log = tmp_path / "supervisor.log"
    supervisor = spawn_worker(APP, env, "--processes", "2", "--concurrency", "16", log=log)
    try:
        started = await eventually(lambda: (c := children(log)) and len(c) == 2 and c, timeout=60)
        # Once it checked the app, the command became the lean supervisor, in the same process.
        assert b"legato.worker.supervisor" in await anyio.Path(f"/proc/{supervisor.pid}/cmdline").read_bytes()
        await publish_orders(rabbit, 200)

        async def some_done() -> bool:
            return sum(run.finished for run in await all_runs(pg_store)) >= 20

        await eventually(some_done, timeout=60)
        victim = started[0][0]
        os.kill(victim, signal.SIGKILL)
        restarted = await eventually(lambda: len(children(log).get(0, [])) == 2 and children(log)[0][1])
        assert restarted != victim
        assert f"worker process 0 (pid {victim}) killed by SIGKILL; restarting it" in log.read_text()
        runs = await wait_finished(pg_store, 200, timeout=180)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(timeout=60)
    assert code == 0, log.read_text()
    # The drain reached every child: none is left behind.
    assert not [pid for pids in children(log).values() for pid in pids if alive(pid)]
    assert len(runs) == 200
    await assert_each_transition_once(pg_store, runs)


async def test_children_of_a_killed_supervisor_stop_gracefully(
    pg_store: PostgresStore, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "supervisor.log"
    supervisor = spawn_worker(APP, worker_env(pg_schema, namespace), "--processes", "2", log=log)
    started = await eventually(lambda: (c := children(log)) and len(c) == 2 and c, timeout=60)
    # At once, while the children may still be starting: they must notice all the same.
    supervisor.kill()
    supervisor.wait(timeout=10)
    pids = [pids[0] for pids in started.values()]
    await eventually(lambda: not any(alive(pid) for pid in pids), timeout=30)
    gone = f"the supervisor (pid {supervisor.pid}) is gone: stopping gracefully"
    assert log.read_text().count(gone) == 2


def test_children_that_keep_dying_make_the_supervisor_give_up(
    pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "supervisor.log"
    supervisor = spawn_worker("tests.apps.dying:app", worker_env(pg_schema, namespace), "-p", "2", log=log)
    code = supervisor.wait(timeout=120)
    text = log.read_text()
    assert code == 1, text
    assert "exited with code 3: it died 5 times in 60 s; giving up" in text
    assert "restarting it in 0.0 s" in text
    assert "restarting it in 0.5 s" in text


def test_processes_need_servers_not_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGATO_")}
    env["PYTHONPATH"] = worker_env("x", "x")["PYTHONPATH"]
    done = subprocess.run(
        [sys.executable, "-m", "legato", "worker", "tests.apps.shop:app", "--processes", "2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--processes needs a database and a broker server" in done.stderr
    assert "Traceback" not in done.stderr
