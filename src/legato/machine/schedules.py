"""Schedules: when a workflow starts on a clock, and what a tick does.

Pure, like the rest of the core: the functions take the time they need
(``after``, ``now``) and read no clock. The shell (``legato.schedules``)
keeps the schedules in the store and fires them through the durable timers.

Cron expressions are parsed by ``cronsim`` in the schedule's time zone
(``zoneinfo``). Around a daylight-saving change it behaves like Debian's
cron: a tick inside the spring-forward gap fires once, at the first instant
after the gap (02:30 on a day that jumps from 02:00 to 03:00 fires at 03:00);
a tick inside the repeated fall-back hour fires once, on its first pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import assert_never
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from legato.machine.policies import spread_for
from legato.machine.values import JSON
from legato.machine.vocabulary import TickOutcome

MAX_COUNTED_MISSES = 10_000
"""Missed ticks are counted one by one up to this many; past it the count says
"at least": a per-second schedule down for a week must not cost a minute to plan."""


class Overlap(StrEnum):
    """What a tick does while the run of an earlier tick is still going."""

    SKIP = "skip"
    """The tick is recorded as skipped; no run."""
    BUFFER_ONE = "buffer_one"
    """The tick waits (one at most) and starts once the running run finishes."""
    CANCEL_OTHER = "cancel_other"
    """The running run is cancelled, then the tick's run starts."""
    ALLOW_ALL = "allow_all"
    """The tick's run starts alongside."""


@dataclass(frozen=True, kw_only=True)
class ScheduleOptions:
    """What every kind of schedule has besides its times."""

    name: str | None = None
    """Unique across the store; defaults to the workflow's name (one schedule per workflow)."""
    input: Mapping[str, JSON] = field(default_factory=dict)
    overlap: Overlap = Overlap.SKIP
    catch_up_window: float = 60.0
    """Seconds: a tick found due later than this after its time is recorded as missed."""
    jitter: float = 0.0
    """Seconds: each tick fires up to this much after its time, the same delay on every replica."""

    def option_problems(self) -> list[str]:
        found = []
        if self.name is not None and (not self.name or self.name.strip() != self.name):
            found.append(f"name must be non-empty without surrounding spaces, got {self.name!r}")
        if self.catch_up_window < 0 or not math.isfinite(self.catch_up_window):
            found.append(f"catch_up_window must be >= 0 seconds, got {self.catch_up_window}")
        if self.jitter < 0 or not math.isfinite(self.jitter):
            found.append(f"jitter must be >= 0 seconds, got {self.jitter}")
        try:
            Overlap(self.overlap)
        except ValueError:
            found.append(f"overlap must be one of {[o.value for o in Overlap]}, got {self.overlap!r}")
        return found


@dataclass(frozen=True)
class Cron(ScheduleOptions):
    """A cron expression (five fields, cronsim's dialect) in a time zone."""

    expression: str
    tz: str = "UTC"

    def problems(self) -> list[str]:
        found = self.option_problems()
        zone = _zone(self.tz)
        if zone is None:
            found.append(f"unknown time zone {self.tz!r}")
            zone = ZoneInfo("UTC")
        try:
            CronSim(self.expression, datetime(2000, 1, 1, tzinfo=zone))
        except (CronSimError, TypeError) as exc:
            found.append(f"invalid cron expression {self.expression!r}: {exc}")
        return found

    def next_after(self, after: float) -> float:
        zone = ZoneInfo(self.tz)
        start = datetime.fromtimestamp(after, zone)
        for tick in CronSim(self.expression, start):
            # cronsim compares wall-clock times: in a repeated fall-back hour it
            # may offer a time that is earlier in absolute terms; never go back.
            if tick.timestamp() > after:
                return tick.timestamp()
        raise AssertionError("a cron expression always has a next time")  # pragma: no cover

    def describe(self) -> str:
        return f"cron {self.expression!r} ({self.tz})"


@dataclass(frozen=True)
class Every(ScheduleOptions):
    """A fixed interval: ticks at multiples of ``seconds`` since the epoch."""

    seconds: float

    def problems(self) -> list[str]:
        found = self.option_problems()
        if (
            not isinstance(self.seconds, int | float)
            or not self.seconds > 0
            or not math.isfinite(self.seconds)
        ):
            found.append(f"an interval must be a positive number of seconds, got {self.seconds!r}")
        return found

    def next_after(self, after: float) -> float:
        # The division can round either way at a multiple: correct it so the
        # tick is the first multiple strictly after ``after``, never the same
        # one again (catch-up would not move) and never one too far (a lost tick).
        k = math.floor(after / self.seconds) + 1
        while k * self.seconds <= after:
            k += 1
        while (k - 1) * self.seconds > after:
            k -= 1
        return k * self.seconds

    def describe(self) -> str:
        return f"every {self.seconds:g}s"


Schedule = Cron | Every


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


def schedule_to_json(schedule: Schedule) -> dict[str, JSON]:
    """The stored form: the times and the options."""
    base: dict[str, JSON] = {
        "overlap": schedule.overlap.value,
        "catch_up_window": schedule.catch_up_window,
        "jitter": schedule.jitter,
    }
    match schedule:
        case Cron():
            return {"cron": schedule.expression, "tz": schedule.tz, **base}
        case Every():
            return {"every": schedule.seconds, **base}
        case _:
            assert_never(schedule)


def schedule_from_json(name: str, spec: Mapping[str, JSON], input: Mapping[str, JSON]) -> Schedule:
    overlap = Overlap(str(spec.get("overlap", Overlap.SKIP)))
    window = float(spec.get("catch_up_window", 60.0))
    jitter = float(spec.get("jitter", 0.0))
    if "cron" in spec:
        return Cron(
            str(spec["cron"]),
            tz=str(spec.get("tz", "UTC")),
            name=name,
            input=dict(input),
            overlap=overlap,
            catch_up_window=window,
            jitter=jitter,
        )
    seconds = float(spec["every"])
    return Every(
        seconds, name=name, input=dict(input), overlap=overlap, catch_up_window=window, jitter=jitter
    )


def schedule_problems(workflow: str, schedules: Sequence[Schedule]) -> list[tuple[str, str]]:
    """(schedule name, problem) for each thing wrong with a workflow's schedules."""
    found: list[tuple[str, str]] = []
    names = [s.name or workflow for s in schedules]
    for name, schedule in zip(names, schedules, strict=True):
        found.extend((name, problem) for problem in schedule.problems())
    if len(set(names)) != len(names):
        found.append((names[-1], "two schedules share a name: name them (Cron(..., name=...))"))
    return found


def jitter_for(schedule_name: str, nominal: float, jitter: float) -> float:
    """The delay of one tick: derived from the schedule and the tick, so every
    replica (and every retry of the firing) computes the same."""
    if jitter <= 0:
        return 0.0
    return jitter * spread_for("schedule", schedule_name, nominal)


def tick_key(schedule_name: str, nominal: float) -> str:
    """The idempotency key of a tick's run: the schedule and the tick's time."""
    stamp = datetime.fromtimestamp(nominal, ZoneInfo("UTC")).isoformat(timespec="milliseconds")
    return f"schedule:{schedule_name}:{stamp}"


# What a firing does -------------------------------------------------------


class OverlapAction(StrEnum):
    START = "start"
    SKIP = "skip"
    BUFFER = "buffer"
    CANCEL_AND_START = "cancel_and_start"


def decide_overlap(policy: Overlap, running: bool, buffered: bool) -> OverlapAction:
    """What a due tick does, given whether the schedule's last run still runs
    and whether a tick already waits in the buffer."""
    if not running:
        return OverlapAction.START
    match policy:
        case Overlap.SKIP:
            return OverlapAction.SKIP
        case Overlap.BUFFER_ONE:
            return OverlapAction.SKIP if buffered else OverlapAction.BUFFER
        case Overlap.CANCEL_OTHER:
            return OverlapAction.CANCEL_AND_START
        case Overlap.ALLOW_ALL:
            return OverlapAction.START
        case _:
            assert_never(policy)


@dataclass(frozen=True)
class CatchUp:
    missed: int
    """Ticks older than the window, not fired."""
    first_missed: float | None
    last_missed: float | None
    due: float | None
    """The tick to fire now (within the window), if any."""
    next_tick: float
    """The tick after: the next timer's time (before jitter)."""


def plan_catch_up(schedule: Schedule, tick: float, now: float) -> CatchUp:
    """From the tick the timer was set for, which ticks are missed, which one
    fires now, and which one is next. Ticks older than ``now - catch_up_window``
    are missed; at most one tick fires per firing, so a gap never turns into a
    burst beyond the window."""
    cutoff = now - schedule.catch_up_window
    missed, first, last = 0, None, None
    while tick < cutoff:
        if missed == MAX_COUNTED_MISSES:
            tick = schedule.next_after(math.nextafter(cutoff, -math.inf))
            break
        missed += 1
        first = tick if first is None else first
        last = tick
        tick = schedule.next_after(tick)
    if tick <= now:
        return CatchUp(missed, first, last, tick, schedule.next_after(tick))
    return CatchUp(missed, first, last, None, tick)


@dataclass(frozen=True)
class ScheduleState:
    """What a firing needs to know of a stored schedule."""

    name: str
    schedule: Schedule
    next_tick: float
    buffered: float | None
    running: bool
    """The schedule's last run has not finished."""


@dataclass(frozen=True)
class TickLine:
    outcome: TickOutcome
    nominal: float
    count: int = 1


@dataclass(frozen=True)
class FirePlan:
    start: tuple[float, ...]
    """Nominal times whose runs start now, in order."""
    cancel_running: bool
    lines: tuple[TickLine, ...]
    """The schedule's history lines for this firing (missed, skipped, buffered...)."""
    buffered: float | None
    next_tick: float
    timer_at: float
    """When the schedule's timer fires next: the next tick plus its jitter, or
    sooner while a buffered tick waits for the running run to finish."""


BUFFER_RECHECK = 5.0
"""Seconds between looks at the running run while a tick waits in the buffer."""


def plan_fire(state: ScheduleState, now: float) -> FirePlan:
    """Everything one firing of a schedule's timer does."""
    lines: list[TickLine] = []
    start: list[float] = []
    buffered = state.buffered
    running = state.running
    if buffered is not None and not running:
        start.append(buffered)
        lines.append(TickLine(TickOutcome.STARTED, buffered))
        buffered, running = None, True
    catch_up = plan_catch_up(state.schedule, state.next_tick, now)
    if catch_up.missed:
        assert catch_up.first_missed is not None
        lines.append(TickLine(TickOutcome.MISSED, catch_up.first_missed, catch_up.missed))
    cancel = False
    if catch_up.due is not None:
        action = decide_overlap(state.schedule.overlap, running, buffered is not None)
        due = catch_up.due
        match action:
            case OverlapAction.START:
                start.append(due)
                lines.append(TickLine(TickOutcome.STARTED, due))
            case OverlapAction.SKIP:
                lines.append(TickLine(TickOutcome.SKIPPED_OVERLAP, due))
            case OverlapAction.BUFFER:
                buffered = due
                lines.append(TickLine(TickOutcome.BUFFERED, due))
            case OverlapAction.CANCEL_AND_START:
                cancel = True
                start.append(due)
                lines.append(TickLine(TickOutcome.CANCELLED_OTHER, due))
                lines.append(TickLine(TickOutcome.STARTED, due))
            case _:
                assert_never(action)
    next_tick = catch_up.next_tick
    timer_at = next_tick + jitter_for(state.name, next_tick, state.schedule.jitter)
    if buffered is not None:
        timer_at = min(timer_at, now + BUFFER_RECHECK)
    return FirePlan(tuple(start), cancel, tuple(lines), buffered, next_tick, timer_at)


def first_tick(schedule: Schedule, now: float) -> float:
    """The first tick of a schedule created (or resumed) at ``now``."""
    return schedule.next_after(now)


def ticks_between(schedule: Schedule, start: float, end: float, limit: int = 1000) -> list[float]:
    """The ticks in ``[start, end]`` (a backfill), at most ``limit``."""
    found: list[float] = []
    tick = schedule.next_after(math.nextafter(start, -math.inf))
    while tick <= end and len(found) < limit:
        found.append(tick)
        tick = schedule.next_after(tick)
    return found
