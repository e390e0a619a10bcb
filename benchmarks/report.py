"""The results as a table (terminal and Markdown), as JSON, and as a PNG chart."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.metrics import CellResult
from benchmarks.systems.base import Guarantees

LEGATO = "legato"
HEADERS = (
    "system",
    "workload",
    "procs",
    "runs/s",
    "steps/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "peak RSS MB",
    "CPU µs/step",
    "legato/this steps/s",
    "legato/this p50",
    "note",
)


def _num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _ratio(mine: float, theirs: float) -> str:
    return f"{mine / theirs:.2f}x" if theirs > 0 and mine > 0 else "-"


def rows(results: Sequence[CellResult]) -> list[list[str]]:
    """One row per cell. Latency is shown for the paced workload only: in a drain
    it is the time a run waited behind the backlog (it stays in the JSON)."""
    legato = {r.workload: r for r in results if r.system == LEGATO and r.ok}
    table = []
    for r in results:
        if not r.ok:
            table.append([r.system, r.workload, str(r.processes), *["-"] * 9, f"FAILED: {r.error}"])
            continue
        paced = r.mode in ("paced", "stream")  # latency from each run's publish
        lat = r.latency
        mine = legato.get(r.workload)
        thru_ratio = "-"
        lat_ratio = "-"
        if mine is not None and r.system != LEGATO:
            if paced and lat is not None and mine.latency is not None:
                lat_ratio = _ratio(mine.latency.p50_ms, lat.p50_ms)
            if r.mode != "paced":
                thru_ratio = _ratio(mine.steps_per_s, r.steps_per_s)
        table.append(
            [
                r.system,
                r.workload,
                str(r.processes),
                _num(r.runs_per_s),
                _num(r.steps_per_s),
                _num(lat.p50_ms, 1) if paced and lat else "-",
                _num(lat.p95_ms, 1) if paced and lat else "-",
                _num(lat.p99_ms, 1) if paced and lat else "-",
                _num(r.peak_rss_mb),
                _num(r.cpu_us_per_step),
                thru_ratio,
                lat_ratio,
                _notes(r),
            ]
        )
    return table


def _notes(result: CellResult) -> str:
    shown = [n.split(":")[0] for n in result.notes if n.startswith(("same cell", "median of"))]
    shown += [n for n in result.notes if "repetitions failed" in n]
    if result.failed:
        shown.append(f"{result.failed} runs failed")
    return "; ".join(shown)


def text_table(results: Sequence[CellResult]) -> str:
    body = rows(results)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in body)
    return "\n".join(lines)


def markdown_table(results: Sequence[CellResult]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows(results))
    return "\n".join(lines)


def guarantees_table(guarantees: Mapping[str, Guarantees]) -> str:
    lines = [
        "| system | durable run state | task acked after | how the workloads are written |",
        "|---|---|---|---|",
    ]
    lines.extend(
        f"| {name} | {g.durable_state} | {g.acked_after} | {g.how} |" for name, g in guarantees.items()
    )
    return "\n".join(lines)


def write_json(
    path: Path, meta: Mapping[str, Any], guarantees: Mapping[str, Guarantees], results: Sequence[CellResult]
) -> None:
    document = {
        "meta": dict(meta),
        "guarantees": {name: vars(g) for name, g in guarantees.items()},
        "results": [r.as_json() for r in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_chart(path: Path, results: Sequence[CellResult], title: str) -> None:
    """Three panels: drain throughput, latency at light load, scale-out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r.ok]
    systems = list(dict.fromkeys(r.system for r in results))
    colours = {name: f"C{i}" for i, name in enumerate(systems)}
    figure, (drain, latency, scale) = plt.subplots(1, 3, figsize=(17, 5.5))
    figure.suptitle(title, fontsize=10)

    drains = ["a", "b", "c"]
    width = 0.8 / max(1, len(systems))
    for i, name in enumerate(systems):
        values = [
            next((r.steps_per_s for r in ok if r.system == name and r.workload == w), 0.0) for w in drains
        ]
        xs = [d + i * width for d in range(len(drains))]
        drain.bar(xs, values, width, label=name, color=colours[name])
    drain.set_xticks([d + width * (len(systems) - 1) / 2 for d in range(len(drains))])
    drain.set_xticklabels(["a: single step", "b: 3-step chain", "c: fan-out 4 + join"])
    drain.set_ylabel("steps/s (drain, 1 worker process)")
    drain.set_yscale("log")
    drain.set_title("throughput")
    _legend(drain)

    paced = [r for r in ok if r.workload == "d" and r.latency is not None]
    for i, r in enumerate(paced):
        assert r.latency is not None
        values = [r.latency.p50_ms, r.latency.p95_ms, r.latency.p99_ms]
        latency.bar([q + i * width for q in range(3)], values, width, label=r.system, color=colours[r.system])
    latency.set_xticks([q + width * (max(1, len(paced)) - 1) / 2 for q in range(3)])
    latency.set_xticklabels(["p50", "p95", "p99"])
    latency.set_ylabel("ms, event published -> run finished")
    latency.set_yscale("log")
    latency.set_title("d: 3-step chain at light load")
    _legend(latency)

    for name in systems:
        points = sorted(
            (r.processes, r.steps_per_s) for r in ok if r.system == name and r.workload.startswith("e")
        )
        if points:
            scale.plot(
                [p for p, _ in points], [s for _, s in points], marker="o", label=name, color=colours[name]
            )
    scale.set_xticks([1, 2, 4])
    scale.set_xlabel("worker processes")
    scale.set_ylabel("steps/s")
    scale.set_yscale("log")
    scale.set_title("e: scale-out of workload b")
    _legend(scale)

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _legend(axes: Any) -> None:
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
