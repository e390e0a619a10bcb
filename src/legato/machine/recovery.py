"""Whether an operator can resume a run at a step, and, when not, why and what to do instead.

One decision serves ``retry``, ``skip`` and ``dlq replay`` (through ``decide``)
and the dashboard, which greys out the Replay of a dead letter whose run cannot
be resumed and shows this reason. It reads only the run's record: a step that
failed the run keeps its token (``Phase.FAILED``, or ``Phase.SUSPENDED`` while
it waits for a person), so where the run failed does not depend on how its
workflow handles failure.
"""

from __future__ import annotations

from typing import assert_never

from legato.machine.run import Phase, Run, RunStatus, Token

STUCK_PHASES = frozenset({Phase.SUSPENDED, Phase.FAILED})
"""A token in one of these waits for a person: retry, skip or (for a dead letter) replay."""

START_AGAIN = "start a new run instead"


def stuck(run: Run) -> list[Token]:
    """The steps of ``run`` that wait for a person, in seq order."""
    return [t for t in run.tokens if t.phase in STUCK_PHASES]


def stuck_at(run: Run, state: str | None, verb: str) -> list[Token] | str:
    """The stuck steps an operator's ``verb`` acts on (those at ``state`` if given),
    or why there are none: what the run is, and what to do instead."""
    refusal = _not_stuck(run, verb)
    if refusal is not None:
        return refusal
    tokens = stuck(run)
    if state is None:
        return tokens
    chosen = [t for t in tokens if t.state == state]
    if not chosen:
        where = ", ".join(sorted({t.state for t in tokens}))
        return f"run {run.id} has no suspended or failed step at state {state!r}; it is stuck at {where}"
    return chosen


def replay_refusal(run: Run, state: str | None) -> str | None:
    """Why a dead letter of ``run`` at ``state`` cannot be replayed now (None: it can)."""
    found = stuck_at(run, state, "a retry")
    return found if isinstance(found, str) else None


def _not_stuck(run: Run, verb: str) -> str | None:
    status = run.status
    error = f"{run.error.type}: {run.error.message}" if run.error else "no error recorded"
    match status:
        case RunStatus.SUSPENDED:
            return None
        case RunStatus.PAUSED:
            if stuck(run):
                return None
            return f"run {run.id} is paused, with no suspended step; resume it instead"
        case RunStatus.FAILED:
            if stuck(run):
                return None
            if run.compensating:
                return (
                    f"run {run.id} failed ({error}) and was unwound, leaving no step to resume; {START_AGAIN}"
                )
            return f"run {run.id} failed outside any step ({error}); it has no step to resume; {START_AGAIN}"
        case RunStatus.COMPENSATED:
            return (
                f"run {run.id} is compensated: it failed ({error}) and what it had done was undone, "
                f"so it cannot be resumed; {START_AGAIN}"
            )
        case RunStatus.CANCELLED:
            return f"run {run.id} is cancelled, so it cannot be resumed; {START_AGAIN}"
        case RunStatus.SUCCEEDED:
            return f"run {run.id} is succeeded; it has nothing to resume"
        case RunStatus.PENDING | RunStatus.RUNNING | RunStatus.COMPENSATING:
            return f"run {run.id} is {status.value}; only a suspended or failed run can be given {verb}"
        case _:
            assert_never(status)
