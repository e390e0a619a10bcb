"""One exception root, a shallow tree.

Every error a user can meet says what was wrong and, where it can, what to do.
"""

from __future__ import annotations


class LegatoError(Exception):
    """Root of every error legato raises on purpose."""


class ConfigurationError(LegatoError):
    """A setting is missing, malformed or points at something unreachable."""


class DefinitionError(LegatoError):
    """A workflow definition is invalid; raised when it is registered."""

    def __init__(self, workflow: str, state: str | None, problem: str, *, what: str = "workflow") -> None:
        self.workflow = workflow
        self.state = state
        self.problem = problem
        where = f"{what} {workflow!r}"
        if state is not None:
            where += f", state {state!r}"
        super().__init__(f"{where}: {problem}")


class SchemaMissing(ConfigurationError):
    """The database has no legato schema (or an older one): ``legato migrate`` first."""


class StoreError(LegatoError):
    """The state store failed or cannot be reached."""


class BrokerError(LegatoError):
    """The message broker failed or cannot be reached."""


class RunNotFound(LegatoError):
    """No run has the given id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}")


class AmbiguousRunId(LegatoError):
    """A short run id that starts the ids of several runs."""

    def __init__(self, prefix: str, candidates: list[str], more: bool) -> None:
        self.prefix = prefix
        self.candidates = candidates
        listed = ", ".join(candidates) + (", ..." if more else "")
        super().__init__(f"run id {prefix!r} is ambiguous: it starts {listed}; give more of it")


class OperationRefused(LegatoError):
    """An operator action or signal makes no sense for the run as it is now.

    Nothing was changed.
    """


class UnknownCompletionToken(LegatoError):
    """No step waits for this completion token: it is mistyped, was never
    recorded (its handler failed), or its run was removed."""

    def __init__(self) -> None:
        super().__init__(
            "unknown completion token: no step was ever handed this token (check it was copied "
            "whole), or its run has been removed"
        )


class CompletionTokenUsed(OperationRefused):
    """The completion token was used already: a token is single-use."""


class StepError(LegatoError):
    """Base of the exceptions a step handler raises to steer its own retry."""


class RetryAfter(StepError):
    """Raise from a handler to retry this step after exactly ``delay`` seconds.

    The attempt still counts against the retry budget.
    """

    def __init__(self, delay: float, reason: str = "") -> None:
        if delay < 0:
            raise ValueError("RetryAfter delay must be >= 0")
        self.delay = float(delay)
        super().__init__(reason or f"retry requested after {delay:g}s")


class NonRetryableError(StepError):
    """Raise from a handler to fail this step at once, skipping any retries left."""


class KeyRetired(LegatoError):
    """The idempotency key belonged to a run that retention removed.

    The key is remembered until ``until`` (the dedupe window) so that a
    redelivered event or a repeated start cannot start a second run; nothing
    was started.
    """

    def __init__(self, key: str, run_id: str, until: float) -> None:
        self.key = key
        self.run_id = run_id
        self.until = until
        super().__init__(
            f"idempotency key {key!r} belonged to run {run_id}, removed by retention; "
            "the key is kept (no new run starts with it) until its dedupe window ends"
        )
