"""Worker processes: start them, watch their memory, stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import anyio
import psutil

STOP_GRACE = 1.5
"""Workers are stopped only after every run has finished, so nothing measured
depends on how they stop; a worker still there after this is killed (Celery's
event loop can sleep ~10 s in epoll before it notices SIGTERM)."""


class Workers:
    """The worker processes of one cell, with the peak of their summed RSS and their CPU time.

    Memory is the resident set of every process in the workers' trees
    (Dramatiq and Celery fork children), sampled every ``interval`` seconds;
    CPU time is user + system of every process of the trees, its last sample
    each (so a process that exits between samples loses at most one interval).
    """

    def __init__(self, commands: Sequence[Sequence[str]], env: dict[str, str], log: Path) -> None:
        self.commands = commands
        self.env = env
        self.log = log
        self.procs: list[subprocess.Popen[bytes]] = []
        self.peak_rss = 0
        self._cpu: dict[int, float] = {}
        self.cpu_at_warm = 0.0
        self._sampling = False

    def sample_cpu(self) -> float:
        """Sample now; the CPU seconds so far."""
        self.rss()
        return self.cpu_seconds

    @property
    def cpu_seconds(self) -> float:
        """User + system seconds of every process of the workers' trees so far."""
        return sum(self._cpu.values())

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as output:
            for command in self.commands:
                self.procs.append(
                    subprocess.Popen(
                        list(command),
                        env=self.env,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def dead(self) -> list[str]:
        """Processes that exited on their own, described."""
        return [
            f"{' '.join(command[:4])}... exited with {proc.returncode}"
            for command, proc in zip(self.commands, self.procs, strict=True)
            if proc.poll() is not None
        ]

    def rss(self) -> int:
        total = 0
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(proc.pid)
                for member in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += member.memory_info().rss
                        times = member.cpu_times()
                        self._cpu[member.pid] = times.user + times.system
        return total

    async def sample(self, interval: float = 0.1) -> None:
        """Run until cancelled, keeping the peak RSS."""
        while True:
            self.peak_rss = max(self.peak_rss, self.rss())
            await anyio.sleep(interval)

    async def stop(self) -> bool:
        """SIGTERM (a graceful stop for every system here), then SIGKILL the stragglers.

        Returns whether every process stopped on SIGTERM within the grace period.
        """
        self.rss()  # a last sample of CPU time, while every process is still there
        for proc in self.procs:
            if proc.poll() is None:
                # The process itself: a forking worker (Dramatiq) passes it on to its children.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        with anyio.move_on_after(STOP_GRACE):
            while any(proc.poll() is None for proc in self.procs):
                await anyio.sleep(0.05)
        graceful = True
        for proc in self.procs:
            if proc.poll() is None:
                graceful = False
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return graceful
