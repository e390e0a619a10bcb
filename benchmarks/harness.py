"""Running one system on one workload (a cell), and every cell in turn.

A cell: reset the system; in drain mode enqueue every run first; start the
worker processes; wait until every run has finished; stop the workers; read
the timestamps the system recorded. Cells run one at a time, workload by
workload with the systems interleaved, so that a change in the machine's
load touches every system of a workload alike.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio

from benchmarks.metrics import CellResult, Timing, summarise
from benchmarks.processes import STOP_GRACE, Workers
from benchmarks.settings import Scale
from benchmarks.systems.base import PYTHON, System
from benchmarks.workloads import Mode, Workload

PROBE_INTERVAL = 0.01
PROGRESS_INTERVAL = 0.2
WARM_UP_RUNS = 5


class CellFailed(Exception):
    pass


async def wait_consuming(system: System, workers: Workers) -> float:
    """The moment the workers began taking work: between the last 'no' and the first 'yes'."""
    before = time.time()
    while True:
        if await system.consuming():
            return (before + time.time()) / 2
        if dead := workers.dead():
            raise CellFailed("; ".join(dead))
        before = time.time()
        await anyio.sleep(PROBE_INTERVAL)


async def wait_finished(system: System, workers: Workers, expected: int) -> int:
    """Wait until ``expected`` runs have ended; returns how many failed."""
    while True:
        finished, failed = await system.progress()
        if finished + failed >= expected:
            return failed
        if dead := workers.dead():
            raise CellFailed("; ".join(dead))
        await anyio.sleep(PROGRESS_INTERVAL)


async def _paced(system: System, workers: Workers, workload: Workload) -> tuple[float, float, int]:
    """Warm up, then publish at the workload's rate; returns (first publish, warm-up end, failed)."""
    for _ in range(WARM_UP_RUNS):
        await system.publish(workload.shape)
    await wait_finished(system, workers, WARM_UP_RUNS)
    workers.cpu_at_warm = workers.sample_cpu()
    warm = time.time()
    first = time.time()
    for index in range(workload.runs):
        # An absolute schedule: a slow publish does not push every later one back.
        await anyio.sleep(max(0.0, first + index / workload.rate - time.time()))
        await system.publish(workload.shape)
    failed = await wait_finished(system, workers, WARM_UP_RUNS + workload.runs)
    return first, warm, failed


async def _streamed(
    system: System, workers: Workers, workload: Workload, log: Path
) -> tuple[float, float, int]:
    """Warm up, then let another process publish every run (benchmarks/publish.py)."""
    for _ in range(WARM_UP_RUNS):
        await system.publish(workload.shape)
    await wait_finished(system, workers, WARM_UP_RUNS)
    workers.cpu_at_warm = workers.sample_cpu()
    warm = time.time()
    command = [PYTHON, "-m", "benchmarks.publish", system.name, workload.shape.value, str(workload.runs)]
    with log.open("ab") as output:
        publisher = await anyio.open_process(command, stdout=output, stderr=output)
    async with publisher:
        failed = await wait_finished(system, workers, WARM_UP_RUNS + workload.runs)
        if await publisher.wait():
            raise CellFailed(f"the publisher exited with {publisher.returncode}")
    return warm, warm, failed


async def run_cell(system: System, workload: Workload, scale: Scale, logs: Path) -> CellResult:
    result = CellResult(
        system.name,
        workload.key,
        workload.title,
        workload.runs,
        workload.steps,
        workload.processes,
        workload.mode.value,
    )
    log = logs / f"{workload.key}-{system.name.replace(' ', '_')}.log"
    timeout = scale.cell_timeout + (workload.runs / workload.rate if workload.rate else 0.0)
    cell_began = time.time()
    cpu_before = 0.0
    try:
        with anyio.fail_after(timeout):
            await system.reset()
            if workload.mode is Mode.DRAIN:
                began = time.time()
                await system.enqueue(workload.shape, workload.runs)
                result.enqueue_seconds = time.time() - began
            workers = Workers(
                system.worker_commands(workload.processes), system.worker_env(workload.processes), log
            )
            workers.start()
            spawned = time.time()
            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(workers.sample)
                    if workload.mode is Mode.DRAIN:
                        started = await wait_consuming(system, workers)
                        cpu_before = workers.sample_cpu()  # imports and connecting are not steps
                        result.startup_seconds = started - spawned
                        failed = await wait_finished(system, workers, workload.runs)
                        started = await system.first_taken() or started
                        warm = 0.0
                    elif workload.mode is Mode.PACED:
                        started, warm, failed = await _paced(system, workers, workload)
                        cpu_before = workers.cpu_at_warm
                    else:
                        started, warm, failed = await _streamed(system, workers, workload, log)
                        cpu_before = workers.cpu_at_warm
                    group.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    if not await workers.stop():
                        result.notes.append(f"killed: still running {STOP_GRACE} s after SIGTERM")
                result.peak_rss_mb = workers.peak_rss / 2**20
            result.cpu_us_per_step = (workers.cpu_seconds - cpu_before) / workload.steps * 1e6
            timings: Sequence[Timing] = [t for t in await system.timings() if t.created >= warm]
            summarise(result, workload, timings, failed, started)
    except TimeoutError:
        result.error = f"timed out after {timeout:.0f} s (log: {log})"
    except CellFailed as exc:
        result.error = f"{exc} (log: {log})"
    result.wall_seconds = time.time() - cell_began
    return result


def _same_cell(workload: Workload) -> tuple[object, ...]:
    return (workload.shape, workload.mode, workload.runs, workload.processes)


def _figure(result: CellResult) -> float:
    """What 'better' means for a cell: steps/s in a drain, a low p50 when paced."""
    if result.mode == Mode.PACED.value:
        return -(result.latency.p50_ms if result.latency else float("inf"))
    return result.steps_per_s


def median_cell(repeats: Sequence[CellResult]) -> CellResult:
    """The repetition with the median figure (the lower middle one for an even count)."""
    ok = sorted((r for r in repeats if r.ok), key=_figure)
    if not ok:
        return repeats[0]
    chosen = dataclasses.replace(ok[(len(ok) - 1) // 2], notes=list(ok[(len(ok) - 1) // 2].notes))
    if len(repeats) > 1:
        figures = ", ".join(f"{abs(_figure(r)):.1f}" for r in repeats if r.ok)
        chosen.notes.append(f"median of {len(ok)} repetitions: {figures}")
    if len(ok) < len(repeats):
        chosen.notes.append(f"{len(repeats) - len(ok)} of {len(repeats)} repetitions failed")
    return chosen


async def run_all(
    systems: Sequence[System],
    workloads: Sequence[Workload],
    scale: Scale,
    logs: Path,
    report: Callable[[CellResult], None],
    repeat: int = 1,
) -> list[CellResult]:
    """Every cell, ``repeat`` rounds over the whole set (so a burst of load on the
    machine hits one round of every system, not every round of one), each cell
    reported as its median round."""
    order = [(s, w) for w in workloads for s in systems if s.supports(w.shape, w.mode)]
    measured: dict[tuple[object, ...], list[CellResult]] = {}
    owner: dict[tuple[object, ...], str] = {}
    for system in systems:
        await system.prepare()
    try:
        for round_ in range(repeat):
            for system, workload in order:
                key = (system.name, *_same_cell(workload))
                owner.setdefault(key, workload.key)
                if len(measured.get(key, ())) > round_:
                    continue  # e1 is workload b when the sizes match: measured once, shown twice
                result = await run_cell(system, workload, scale, logs)
                measured.setdefault(key, []).append(result)
                report(result)
    finally:
        for system in systems:
            await system.close()
    results = []
    for system, workload in order:
        key = (system.name, *_same_cell(workload))
        chosen = median_cell(measured[key])
        if owner[key] != workload.key:
            chosen = dataclasses.replace(
                chosen,
                workload=workload.key,
                title=workload.title,
                notes=[*chosen.notes, f"same cell as {owner[key]}"],
            )
        results.append(chosen)
    return results
