"""Retry and failure policies: pure values and pure decisions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from legato.machine.errors import ErrorInfo, type_name


def exception_names(types: tuple[type[BaseException] | str, ...]) -> tuple[str, ...]:
    """Normalise exception classes or names given by a user to qualified names."""
    return tuple(kind if isinstance(kind, str) else type_name(kind) for kind in types)


@dataclass(frozen=True)
class RetryPolicy:
    """When and how often a failed step is tried again.

    ``max_attempts`` counts every attempt, the first included. The default is
    the classic exponential ladder: the first attempt, then five retries after
    1, 2, 4, 8 and 16 s (six attempts in all), each delay spread by ±10 %
    jitter.

    ``retry_on`` limits retries to those error types (empty = every error);
    ``non_retryable`` errors are never retried, whatever ``retry_on`` says.
    """

    max_attempts: int = 6
    initial_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.1
    retry_on: tuple[str, ...] = ()
    non_retryable: tuple[str, ...] = ()

    @classmethod
    def create(
        cls,
        max_attempts: int = 6,
        initial_delay: float = 1.0,
        factor: float = 2.0,
        max_delay: float = 300.0,
        jitter: float = 0.1,
        retry_on: tuple[type[BaseException] | str, ...] = (),
        non_retryable: tuple[type[BaseException] | str, ...] = (),
    ) -> RetryPolicy:
        """Build a policy from exception classes or names."""
        return cls(
            max_attempts=max_attempts,
            initial_delay=initial_delay,
            factor=factor,
            max_delay=max_delay,
            jitter=jitter,
            retry_on=exception_names(retry_on),
            non_retryable=exception_names(non_retryable),
        )

    @classmethod
    def none(cls) -> RetryPolicy:
        """A single attempt: failures go straight to the failure path."""
        return cls(max_attempts=1)

    def problems(self) -> list[str]:
        """Why this policy is illegal; empty when it is fine."""
        found = []
        if self.max_attempts < 1:
            found.append(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_delay < 0:
            found.append(f"initial_delay must be >= 0, got {self.initial_delay}")
        if self.factor < 1:
            found.append(f"factor must be >= 1, got {self.factor}")
        if self.max_delay < self.initial_delay:
            found.append(f"max_delay ({self.max_delay}) must be >= initial_delay ({self.initial_delay})")
        if not 0 <= self.jitter <= 1:
            found.append(f"jitter must be within [0, 1], got {self.jitter}")
        return found

    def base_delay(self, failed_attempt: int) -> float:
        """Delay before the attempt after ``failed_attempt`` (1-based), before jitter."""
        exponent = max(failed_attempt - 1, 0)
        # Cap the exponent: 2**2000 overflows a float long before max_delay matters.
        raw = self.initial_delay * self.factor ** min(exponent, 64)
        return min(raw, self.max_delay)

    def delay(self, failed_attempt: int, spread: float) -> float:
        """Delay with jitter; ``spread`` is a number in [0, 1) chosen by the caller."""
        base = self.base_delay(failed_attempt)
        jittered = base * (1 + self.jitter * (2 * spread - 1))
        return max(0.0, min(jittered, self.max_delay))

    def retryable(self, error: ErrorInfo) -> bool:
        if self.non_retryable and error.matches(self.non_retryable):
            return False
        return not self.retry_on or error.matches(self.retry_on)


DEFAULT_RETRY = RetryPolicy()


def policy_problems(label: str, policy: RetryPolicy) -> Iterator[str]:
    """What is wrong with a workflow's or a state's ``label`` policy, in one line, if anything."""
    found = policy.problems()
    if found:
        yield f"illegal {label} policy: {'; '.join(found)}"


def spread_for(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts.

    Jitter must differ between runs (that is its point) yet keep ``decide``
    pure and replayable; hashing the run id, step and attempt gives both.
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class GiveUp(StrEnum):
    """Why a failed step will not be tried again."""

    EXHAUSTED = "retries exhausted"
    NON_RETRYABLE = "non-retryable error"


@dataclass(frozen=True)
class RetryDecision:
    """``delay`` is set when the step is retried; ``give_up`` when it is not."""

    delay: float | None = None
    give_up: GiveUp | None = None


def decide_retry(
    policy: RetryPolicy,
    attempts_used: int,
    error: ErrorInfo,
    spread: float,
    requested_delay: float | None = None,
    non_retryable: bool = False,
) -> RetryDecision:
    """Retry or give up after a failed attempt.

    ``attempts_used`` counts the attempts of the current budget, including the
    one that just failed. A handler may ask for a delay (``RetryAfter``) or
    for no retry at all (``NonRetryableError``); both still obey the budget.
    """
    if non_retryable or not policy.retryable(error):
        return RetryDecision(give_up=GiveUp.NON_RETRYABLE)
    if attempts_used >= policy.max_attempts:
        return RetryDecision(give_up=GiveUp.EXHAUSTED)
    if requested_delay is not None:
        return RetryDecision(delay=requested_delay)
    return RetryDecision(delay=policy.delay(attempts_used, spread))


class OnFailure(StrEnum):
    """What a run does when a step has failed for good."""

    COMPENSATE = "compensate"
    """Run the compensations of completed steps in reverse (saga), then end
    ``compensated``; with nothing to compensate, end ``failed``."""
    FAIL = "fail"
    """End ``failed`` at once; a dead-letter replay can resume it."""
    SUSPEND = "suspend"
    """Pause the run as ``suspended`` for a person to retry, skip or cancel."""


class ParentClose(StrEnum):
    """What becomes of a running child run when its parent ends or unwinds first."""

    CANCEL = "cancel"
    """Cancel the child (it compensates what it completed, by its own definition)."""
    LEAVE = "leave"
    """Let the child run on by itself; its outcome no longer reaches the parent."""


class OnDeadline(StrEnum):
    """What a run does when its SLA deadline passes before it finishes."""

    RECORD = "record"
    FAIL = "fail"
