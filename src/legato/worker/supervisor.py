"""``legato worker --processes N``: one supervisor, N worker processes.

A worker is one asyncio process, so it uses one core. On a VM where one
container per core is not the deployment, the supervisor starts N workers,
each an ordinary ``legato worker`` (the same command line, told by
:data:`CHILD_INDEX` that it is child number i), and:

* forwards SIGTERM and Ctrl-C, so that every child drains gracefully; a second
  signal is forwarded too, and stops them at once, as it does a single worker;
* restarts a child that dies, logging why, with the backoff of
  :class:`~legato.worker.restarts.RestartPolicy`;
* gives up when a child keeps dying: it stops the others and exits non-zero,
  so that systemd or the orchestrator sees a failed service, not a crash loop.

Children run in their own session, so that a Ctrl-C in a terminal reaches the
supervisor only and is forwarded once, not twice (which would mean "at once").

The supervisor is a program of its own (:func:`main`): ``legato worker`` checks
the app and its settings, then replaces itself with it (``exec``, same pid). So
the supervisor holds none of what it checked -- the app, the worker, the
drivers -- and holds about 26 MB beside its children, not 36 (most of it is
the event loop: asyncio with ssl).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence

import anyio
from anyio.abc import Process

from legato.clock import Clock, SystemClock
from legato.logs import LogFormat, configure_logging
from legato.worker.restarts import GiveUp, RestartPolicy

log = logging.getLogger("legato.supervisor")

CHILD_INDEX = "LEGATO_WORKER_INDEX"
"""Set in each child's environment: its slot, 0 to N-1."""

SUPERVISOR_PID = "LEGATO_SUPERVISOR_PID"
"""Set in each child's environment: whose child it is, so that it can tell
when the supervisor is gone, even if that happened while it started."""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        env: Mapping[str, str],
        policy: Callable[[], RestartPolicy] = RestartPolicy,
        clock: Clock | None = None,
    ) -> None:
        self.command = list(command)
        self.processes = processes
        self.env = dict(env)
        self.policy = policy
        self.clock = clock or SystemClock()
        self.children: dict[int, Process] = {}
        self.exit_code = 0
        self._stopping = anyio.Event()

    async def run(self) -> int:
        """Run the children until they are stopped; the supervisor's exit code."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._signals, name="signals")
            async with anyio.create_task_group() as slots:
                for index in range(self.processes):
                    slots.start_soon(self._slot, index, name=f"worker {index}")
            group.cancel_scope.cancel()
        return self.exit_code

    def stop(self) -> None:
        """Stop every child gracefully (a second call: at once)."""
        self._stopping.set()
        self._signal_all(signal.SIGTERM)

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for number in signals:
                if not self._stopping.is_set():
                    log.info(
                        "%s: stopping %d worker processes gracefully (send again to stop at once)",
                        signal.Signals(number).name,
                        len(self.children),
                    )
                self.stop()

    async def _slot(self, index: int) -> None:
        policy = self.policy()
        while not self._stopping.is_set():
            process = await anyio.open_process(
                self.command,
                env={**self.env, CHILD_INDEX: str(index), SUPERVISOR_PID: str(os.getpid())},
                stdin=subprocess.DEVNULL,
                stdout=None,
                stderr=None,
                start_new_session=True,
            )
            self.children[index] = process
            log.info("worker process %d started (pid %d)", index, process.pid)
            try:
                code = await process.wait()
            except anyio.get_cancelled_exc_class():
                process.kill()  # the supervisor itself is going: leave no orphan behind
                raise
            finally:
                del self.children[index]
            if self._stopping.is_set():
                return
            answer = policy.died(self.clock.monotonic())
            if isinstance(answer, GiveUp):
                log.error(
                    "worker process %d (pid %d) %s: it died %d times in %.0f s; giving up",
                    index,
                    process.pid,
                    describe_exit(code),
                    answer.deaths,
                    answer.window,
                )
                self.exit_code = 1
                self.stop()
                return
            log.warning(
                "worker process %d (pid %d) %s; restarting it in %.1f s",
                index,
                process.pid,
                describe_exit(code),
                answer.delay,
            )
            with anyio.move_on_after(answer.delay):
                await self._stopping.wait()

    def _signal_all(self, number: signal.Signals) -> None:
        for process in list(self.children.values()):
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):  # it exited meanwhile: its slot sees it
                    process.send_signal(number)


def exec_supervisor(processes: int, command: Sequence[str], log_level: str, log_format: str) -> None:
    """Replace this process with the supervisor of ``processes`` children
    running ``command`` (the same pid: whoever started it keeps its handle)."""
    sys.stdout.flush()
    sys.stderr.flush()
    program = [sys.executable, "-m", "legato.worker.supervisor"]
    options = ["--processes", str(processes), "--log-level", log_level, "--log-format", log_format]
    os.execv(sys.executable, [*program, *options, "--", *command])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m legato.worker.supervisor --processes N ... -- COMMAND...``: what
    ``legato worker --processes N`` becomes once it has checked the app."""
    parser = argparse.ArgumentParser(prog="legato worker supervisor")
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-format", default=LogFormat.TEXT.value)
    parser.add_argument("command", nargs="+", help="a child's command line, after --")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    configure_logging(args.log_level, args.log_format)
    log.info("legato worker supervisor: %d processes", args.processes)
    supervisor = Supervisor(args.command, args.processes, os.environ)
    code: int = anyio.run(supervisor.run, backend_options={"use_uvloop": True})
    return code


if __name__ == "__main__":
    sys.exit(main())
