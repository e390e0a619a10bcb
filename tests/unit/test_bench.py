"""The benchmark harness's arithmetic and workloads (benchmarks/); no services, no timing.

Speed itself is measured by ``make bench``, never asserted here: these tests
prove that the figures are computed right and that the workloads are the ones
the table claims.
"""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.apps import app
from benchmarks.harness import median_cell
from benchmarks.metrics import CellResult, Latency, Timing, percentile, summarise
from benchmarks.profile import parse_raw
from benchmarks.profile import summarise as summarise_profile
from benchmarks.report import markdown_table, rows, text_table
from benchmarks.settings import FULL, QUICK, db_pool
from benchmarks.workloads import Mode, Shape, Workload, workloads
from legato.machine.run import RunStatus
from tests.unit.sim import Sim


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([float(v) for v in range(1, 101)], 50, 50.5),
        ([float(v) for v in range(1, 101)], 99, 99.01),
        ([float(v) for v in range(100, 0, -1)], 95, 95.05),  # order does not matter
        ([3.0, 1.0, 2.0], 0, 1.0),
        ([3.0, 1.0, 2.0], 100, 3.0),
    ],
)
def test_percentile_interpolates_linearly(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def _cell(system: str, workload: Workload) -> CellResult:
    return CellResult(
        system,
        workload.key,
        workload.title,
        workload.runs,
        workload.steps,
        workload.processes,
        workload.mode.value,
    )


CHAIN = Workload("b", "chains", Shape.CHAIN, Mode.DRAIN, 4)
PACED = Workload("d", "paced", Shape.CHAIN, Mode.PACED, 3, rate=20.0)
STREAM = Workload("g", "streamed", Shape.SINGLE, Mode.STREAM, 3)


def test_drain_throughput_runs_from_the_start_of_consumption_to_the_last_finish() -> None:
    timings = [Timing(0.0, 101.0), Timing(0.0, 102.0), Timing(0.0, 103.0), Timing(0.0, 104.0)]
    result = summarise(_cell("x", CHAIN), CHAIN, timings, failed=0, started=100.0)
    assert result.ok
    assert result.seconds == pytest.approx(4.0)
    assert result.runs_per_s == pytest.approx(1.0)
    assert result.steps_per_s == pytest.approx(3.0)  # three steps a run
    assert result.latency is not None
    assert result.latency.p50_ms == pytest.approx(102_500.0)


def test_paced_latency_is_finish_minus_creation() -> None:
    timings = [Timing(10.0, 10.010), Timing(10.05, 10.070), Timing(10.1, 10.130)]
    result = summarise(_cell("x", PACED), PACED, timings, failed=0, started=10.0)
    assert result.latency is not None
    assert result.latency.p50_ms == pytest.approx(20.0)
    assert result.latency.max_ms == pytest.approx(30.0)


def test_missing_runs_make_the_cell_fail_and_failures_are_counted() -> None:
    result = summarise(_cell("x", CHAIN), CHAIN, [Timing(0.0, 1.0), Timing(0.0, 2.0)], failed=1, started=0.0)
    assert not result.ok
    assert result.error == "only 2 of 4 runs finished"
    assert result.failed == 1
    empty = summarise(_cell("x", CHAIN), CHAIN, [], failed=0, started=0.0)
    assert empty.error == "no run finished"


def _measured(system: str, workload: Workload, steps_per_s: float, p50: float) -> CellResult:
    cell = _cell(system, workload)
    cell.steps_per_s = steps_per_s
    cell.runs_per_s = steps_per_s / workload.shape.steps
    cell.latency = Latency(p50, p50 * 2, p50 * 3, p50 * 4)
    cell.cpu_us_per_step = 1e6 / steps_per_s  # as if one core were busy
    return cell


def test_the_table_compares_legato_by_throughput_in_a_drain_and_by_latency_when_paced() -> None:
    failed = _cell("dbos", CHAIN)
    failed.error = "timed out"
    results = [
        _measured("legato", CHAIN, 3000.0, 500.0),
        _measured("celery", CHAIN, 1000.0, 100.0),
        failed,
        _measured("legato", PACED, 60.0, 8.0),
        _measured("celery", PACED, 60.0, 4.0),
    ]
    table = {(row[0], row[1]): row for row in rows(results)}
    assert table[("celery", "b")][10] == "3.00x"  # legato/celery steps/s
    assert table[("celery", "b")][5] == "-"  # latency in a drain is queueing, not shown
    assert table[("celery", "d")][11] == "2.00x"  # legato/celery p50
    assert table[("celery", "d")][5] == "4.0"
    assert table[("dbos", "b")][-1] == "FAILED: timed out"
    assert table[("legato", "b")][10] == "-"
    assert table[("celery", "b")][9] == "1,000"  # worker CPU µs per step
    assert len(markdown_table(results).splitlines()) == len(results) + 2
    assert "FAILED: timed out" in text_table(results)


def test_a_streamed_cell_shows_its_latency_from_publish_and_both_ratios() -> None:
    results = [_measured("legato", STREAM, 900.0, 10.0), _measured("dramatiq", STREAM, 300.0, 20.0)]
    row = {r[0]: r for r in rows(results)}["dramatiq"]
    assert (row[5], row[7]) == ("20.0", "60.0")  # p50, p99
    assert (row[10], row[11]) == ("3.00x", "0.50x")


def test_the_full_scale_is_the_one_the_issue_specifies() -> None:
    found = {w.key: w for w in workloads(FULL)}
    assert (found["a"].runs, found["a"].shape, found["a"].mode) == (20_000, Shape.SINGLE, Mode.DRAIN)
    assert (found["b"].runs, found["b"].shape) == (2_000, Shape.CHAIN)
    assert (found["c"].runs, found["c"].shape) == (1_000, Shape.FANOUT)
    assert (found["d"].runs, found["d"].rate, found["d"].mode) == (600, 20.0, Mode.PACED)
    assert [(w.processes, w.runs, w.shape) for k, w in found.items() if k.startswith("e")] == [
        (1, 2_000, Shape.CHAIN),
        (2, 2_000, Shape.CHAIN),
        (4, 2_000, Shape.CHAIN),
    ]
    assert (found["f"].runs, found["f"].shape, found["f"].steps) == (2_000, Shape.DATA, 6_000)
    assert (found["g"].runs, found["g"].shape, found["g"].mode) == (20_000, Shape.SINGLE, Mode.STREAM)
    assert (found["m"].runs, found["m"].shape, found["m"].steps) == (100, Shape.MAP, 10_000)
    assert {w.key[0] for w in workloads(QUICK)} == {"a", "b", "c", "d", "e", "f", "g", "m"}


def test_every_system_gets_the_same_postgres_budget() -> None:
    assert [db_pool(p) * p for p in (1, 2, 4)] == [8, 16, 24]


@pytest.mark.parametrize("shape", list(Shape))
def test_the_legato_bench_workflows_run_as_many_steps_as_the_table_counts(shape: Shape) -> None:
    sim = Sim(app.workflow(shape.value)).start(shape.input)
    run = sim.drive()
    assert run.status is RunStatus.SUCCEEDED
    assert len(sim.dispatched) == shape.steps


def test_the_profile_summary_counts_self_time_and_time_with_callees() -> None:
    raw = "main (app.py);handle (legato/worker/steps.py);execute (asyncpg/connection.py) 6\n"
    raw += "main (app.py);handle (legato/worker/steps.py) 2\n"
    raw += "main (app.py);write (asyncio/streams.py) 2\n"
    stacks = parse_raw(raw)
    assert stacks == Counter(
        {
            ("main (app.py)", "handle (legato/worker/steps.py)", "execute (asyncpg/connection.py)"): 6,
            ("main (app.py)", "handle (legato/worker/steps.py)"): 2,
            ("main (app.py)", "write (asyncio/streams.py)"): 2,
        }
    )
    text = summarise_profile(stacks)
    assert "10 samples" in text
    assert " 60.0%  execute (asyncpg/connection.py)" in text  # self
    assert " 80.0%  handle (legato/worker/steps.py)" in text  # with callees
    assert " 60.0%  asyncpg/connection.py" in text  # by module
    assert " 60.0%  Postgres: other statements" in text  # by what the worker was doing
    assert " 20.0%  legato: dispatcher" in text


def test_repeated_cells_report_their_median_round() -> None:
    rounds = [_measured("legato", CHAIN, s, 1.0) for s in (300.0, 900.0, 500.0)]
    failed = _cell("legato", CHAIN)
    failed.error = "timed out"
    chosen = median_cell([*rounds, failed])
    assert chosen.steps_per_s == 500.0
    assert "median of 3 repetitions: 300.0, 900.0, 500.0" in chosen.notes
    assert "1 of 4 repetitions failed" in chosen.notes
    assert rounds[2].notes == []  # the chosen round itself is not changed
    paced = [_measured("legato", PACED, 60.0, p50) for p50 in (9.0, 7.0)]
    assert median_cell(paced).latency == paced[0].latency  # the lower middle: the slower of two
    assert median_cell([failed]) is failed
