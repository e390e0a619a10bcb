"""``python -m benchmarks [--quick] [--systems ...] [--workloads ...]``: run, print, save."""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import aio_pika
import anyio

from benchmarks import db, report
from benchmarks.harness import run_all
from benchmarks.metrics import CellResult
from benchmarks.settings import BROKER_URL, FULL, QUICK, ROOT
from benchmarks.systems.base import System
from benchmarks.workloads import workloads

SYSTEMS = {
    "legato": "benchmarks.systems.legato_system:LegatoSystem",
    "legato-events": "benchmarks.systems.legato_system:LegatoEventsSystem",
    "legato-flat": "benchmarks.systems.legato_system:LegatoFlatSystem",
    "bare": "benchmarks.systems.bare_system:BareSystem",
    "celery": "benchmarks.systems.celery_system:CelerySystem",
    "dramatiq": "benchmarks.systems.dramatiq_system:DramatiqSystem",
    "dbos": "benchmarks.systems.dbos_system:DBOSSystem",
}
DEFAULT_SYSTEMS = ("legato", "bare", "celery", "dramatiq", "dbos")
PACKAGES = (
    "legato",
    "aio-pika",
    "asyncpg",
    "celery",
    "kombu",
    "dramatiq",
    "pika",
    "dbos",
    "SQLAlchemy",
    "psycopg",
)


def build(name: str) -> System:
    module, _, attribute = SYSTEMS[name].partition(":")
    try:
        kind = getattr(importlib.import_module(module), attribute)
    except ImportError as exc:
        raise SystemExit(f"{name}: {exc}; install the peers with: pip install -e '.[bench]'") from exc
    system: System = kind()
    return system


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "packages": versions,
    }


async def rabbitmq_version() -> str:
    connection = await aio_pika.connect(BROKER_URL)
    try:
        transport = connection.transport
        version = transport.connection.server_properties.get("version", "?") if transport else "?"
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        await connection.close()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: every system and workload in < 2 min"
    )
    parser.add_argument(
        "--systems", default=",".join(DEFAULT_SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}"
    )
    parser.add_argument(
        "--workloads", default="a,b,c,d,e,f,g,m", help="comma-separated, of a, b, c, d, e, f, g, m"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds over every cell; each cell shows its median round"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="where to write results"
    )
    args = parser.parse_args(argv)
    unknown = set(args.systems.split(",")) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {', '.join(sorted(unknown))}; known: {', '.join(SYSTEMS)}")
    return args


async def main(args: argparse.Namespace) -> int:
    scale = QUICK if args.quick else FULL
    stem = "quick" if args.quick else "full"
    chosen = set(args.workloads.split(","))
    selected = [w for w in workloads(scale) if w.key[0] in chosen]
    systems = [build(name) for name in args.systems.split(",")]
    out: Path = args.out
    began = time.time()
    load_before = os.getloadavg()
    postgres = (await db.fetch("SELECT current_setting('server_version')"))[0][0]
    rabbitmq = await rabbitmq_version()
    print(
        f"legato benchmarks ({stem}): {len(selected)} workloads x {len(systems)} systems; load {load_before[0]:.2f}"
    )

    def progress(result: CellResult) -> None:
        if result.ok:
            print(
                f"  {result.workload:<3} {result.system:<10} {result.steps_per_s:>9,.0f} steps/s"
                f"  {result.runs_per_s:>8,.0f} runs/s  peak RSS {result.peak_rss_mb:,.0f} MB  CPU {result.cpu_us_per_step:,.0f} µs/step"
                + (
                    f"  p50 {result.latency.p50_ms:.1f} ms"
                    if result.mode == "paced" and result.latency
                    else ""
                ),
                flush=True,
            )
        else:
            print(f"  {result.workload:<3} {result.system:<10} FAILED: {result.error}", flush=True)

    results = await run_all(systems, selected, scale, out / "logs" / stem, progress, args.repeat)
    load_after = os.getloadavg()
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": stem,
        "repeat": args.repeat,
        "scale": vars(scale),
        "machine": machine(),
        "postgres": postgres,
        "rabbitmq": rabbitmq,
        "load_before": load_before,
        "load_after": load_after,
        "seconds": round(time.time() - began, 1),
    }
    title = (
        f"legato benchmarks ({stem}), {meta['date']}, {meta['machine']['cpus']} cores, "
        f"load {load_before[0]:.1f} -> {load_after[0]:.1f}"
    )
    guarantees = {s.name: s.guarantees for s in systems}
    report.write_json(out / f"{stem}.json", meta, guarantees, results)
    (out / f"{stem}.md").write_text(
        f"{title}\n\n{report.markdown_table(results)}\n\n{report.guarantees_table(guarantees)}\n"
    )
    report.write_chart(out / f"{stem}.png", results, title)
    print()
    print(report.text_table(results))
    print()
    print(f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; {meta['seconds']} s in all")
    print(f"wrote {out / (stem + '.json')}, {out / (stem + '.md')}, {out / (stem + '.png')}")
    return 1 if any(not r.ok for r in results) else 0


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    arguments.out.mkdir(parents=True, exist_ok=True)
    sys.exit(anyio.run(main, arguments))
