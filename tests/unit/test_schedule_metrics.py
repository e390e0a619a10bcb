"""The schedule metrics move with what a firing reports."""

from __future__ import annotations

from legato.machine.schedules import TickLine
from legato.machine.vocabulary import TickOutcome
from legato.observe import ScheduleFiredInput
from legato.telemetry.metrics import Metrics


def test_a_firing_counts_lag_ticks_and_misses() -> None:
    metrics = Metrics()
    metrics.observer().schedule_fired(
        ScheduleFiredInput(
            "nightly",
            "report",
            (TickLine(TickOutcome.MISSED, 100.0, 7), TickLine(TickOutcome.STARTED, 900.0)),
            lag=2.5,
            next_fire_at=1_800.0,
        )
    )
    text = metrics.render().decode()
    assert 'legato_schedule_misses_total{schedule="nightly"} 7.0' in text
    assert 'legato_schedule_ticks_total{outcome="started",schedule="nightly"} 1.0' in text
    assert 'legato_schedule_lag_seconds_sum{schedule="nightly"} 2.5' in text
