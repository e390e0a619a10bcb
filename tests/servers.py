"""A Postgres cluster and a RabbitMQ node of a test's own, to stop, kill and restart.

Tests that take a server away must never touch the shared servers other tests
(and other test runs) use, so they start their own: a Postgres cluster made by
``initdb`` in a temporary directory, a RabbitMQ node with its own name, ports
and data directory, both on loopback ports picked free. Everything here is
synchronous (subprocesses); async callers wrap calls in ``anyio.to_thread``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class ServerError(RuntimeError):
    """A server of the test's own would not start or stop."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(check: object, timeout: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ServerError(f"{what}: not within {timeout:g}s")
        time.sleep(0.1)


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        located = shutil.which("initdb")
        if located is None:
            raise ServerError("no initdb: install PostgreSQL's server binaries")
        return Path(located).parent
    return Path(found[-1]).parent


class OwnPostgres:
    """A throwaway Postgres cluster on a free loopback port (run as ``postgres`` under root)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin = _postgres_bin()
        self.base = Path(tempfile.mkdtemp(prefix="legato-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.base, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [str(self.bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, check=False, timeout=120)
        if check and done.returncode != 0:
            raise ServerError(f"{tool} failed: {done.stderr.decode(errors='replace')[-2000:]}")
        return done

    def start(self, timeout: float = 60.0) -> None:
        """Start (again); after a ``kill -9`` the old backends may need a moment to go."""
        # fsync off only costs data on an OS crash, which no test makes; commits stay
        # synchronous, so a killed postmaster loses nothing that was acknowledged.
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        )
        deadline = time.monotonic() + timeout
        while True:
            done = self._run(
                "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start", check=False
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise ServerError(f"postgres would not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast`` (or ``immediate``, a crash without the mess)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None

    def kill(self) -> None:
        """``kill -9`` the postmaster: the hardest crash Postgres has to recover from."""
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


class OwnRabbitMQ:
    """A throwaway RabbitMQ node: its own node name, ports, data and Erlang cookie."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dist_port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="legato-mq-"))
        self.node = f"legato{self.port}@localhost"
        self.log = self.base / "rabbitmq.log"
        (self.base / "enabled_plugins").write_text("[].\n")
        self.env = {
            **os.environ,
            "HOME": str(self.base),  # where the Erlang cookie is made and found
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self._script = _rabbitmq_script()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self, timeout: float = 90.0) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        with self.log.open("ab") as output:
            self._process = subprocess.Popen(
                [self._script],
                env=self.env,
                cwd=self.base,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: port_open(self.port) or self._died(), timeout, "rabbitmq start")
        if self._died():
            raise ServerError(f"rabbitmq would not start: {self.log.read_text()[-2000:]}")

    def _died(self) -> bool:
        return self._process is not None and self._process.poll() is not None

    def stop(self, timeout: float = 60.0) -> None:
        """A clean shutdown (SIGTERM: the script asks the node to stop)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        wait_until(lambda: not port_open(self.port), 10, "rabbitmq port closed")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)


def _rabbitmq_script() -> str:
    # The one in lib runs as the caller; /usr/sbin's wrapper would switch to the
    # rabbitmq user and its shared settings.
    for candidate in ("/usr/lib/rabbitmq/bin/rabbitmq-server", shutil.which("rabbitmq-server")):
        if candidate and Path(candidate).exists():
            return candidate
    raise ServerError("no rabbitmq-server: install RabbitMQ")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM, and SIGKILL if it has not exited within ``timeout``: a test never
    leaves a worker behind. Returns the exit status (negative when killed)."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(10)
