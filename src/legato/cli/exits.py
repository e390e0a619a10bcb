"""The exit codes of ``legato`` commands (docs/operations.md, "Exit codes"): one
per outcome a script branches on, so that it never has to parse text."""

from __future__ import annotations

from enum import IntEnum

from legato.machine.run import RunStatus


class ExitCode(IntEnum):
    OK = 0
    """Done; with ``start --wait``, the run succeeded."""
    ERROR = 1
    """The command could not do what was asked (refused action, unknown run, no server, ...)."""
    USAGE = 2
    """Bad arguments or options (click's own code)."""
    STILL_RUNNING = 3
    """``start --wait``: the run had not finished when the wait ran out; it goes on."""
    RUN_FAILED = 4
    """``start --wait``: the run ended ``failed``."""
    RUN_COMPENSATED = 5
    """``start --wait``: the run ended ``compensated`` (its completed steps were undone)."""
    RUN_CANCELLED = 6
    """``start --wait``: the run ended ``cancelled``."""


_BY_STATUS = {
    RunStatus.SUCCEEDED: ExitCode.OK,
    RunStatus.FAILED: ExitCode.RUN_FAILED,
    RunStatus.COMPENSATED: ExitCode.RUN_COMPENSATED,
    RunStatus.CANCELLED: ExitCode.RUN_CANCELLED,
}


def for_finished(status: RunStatus) -> ExitCode:
    """The code of a run that ``start --wait`` saw in ``status``."""
    return _BY_STATUS.get(status, ExitCode.STILL_RUNNING)
