"""Where one legato worker spends its CPU: ``python -m benchmarks.profile [--events] [--shape single]``.

Starts one worker process like the harness does, attaches py-spy to it
once it consumes, starts the runs, and samples until they have all finished.
Writes the raw stacks (benchmarks/results/profile/<system>-<shape>.raw, which
https://www.speedscope.app and flamegraph.pl read) and prints the top costs:
by function (self time), by function including callees, and by module.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import anyio

from benchmarks.harness import wait_consuming, wait_finished
from benchmarks.processes import Workers
from benchmarks.settings import ROOT
from benchmarks.systems.legato_system import LegatoEventsSystem, LegatoSystem
from benchmarks.workloads import Shape

PY_SPY = str(Path(sys.executable).with_name("py-spy"))


def parse_raw(text: str) -> Counter[tuple[str, ...]]:
    """py-spy's raw format: one ``frame;frame;...;leaf count`` line per distinct stack."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def _function(frame: str) -> str:
    return frame.strip()


def _module(frame: str) -> str:
    # "name (package/module.py)" -> "package/module.py"
    inside = frame.rpartition("(")[2].rstrip(")")
    return inside.split(":")[0] or frame


SCAFFOLDING = ("<frozen runpy>", "click/", "legato/cli/", "legato/__main__.py", "asyncio/runners.py")
"""Frames every sample passes through (process start-up, the CLI, the event loop's entry)."""


CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Postgres: resetting a connection on every pool release", ("Connection.reset (",)),
    (
        "Postgres: deleting published outbox rows (outbox_done)",
        ("PostgresOutbox.outbox_done (", "PostgresStore.outbox_done ("),
    ),
    ("Postgres: loading the run", ("PostgresRuns.load_run (", "PostgresStore.load_run (")),
    (
        "Postgres: the transition's transaction (store.apply)",
        ("PostgresRuns.apply (", "PostgresStore.apply ("),
    ),
    ("Postgres: other statements (or their callers not sampled)", ("asyncpg/",)),
    (
        "AMQP: publishing a task (building and sending frames)",
        ("RabbitMQBroker.publish (", "Exchange.publish ("),
    ),
    ("AMQP: acking", ("Delivery.ack (", "IncomingMessage.ack (")),
    ("AMQP: writing frames to the socket (aiormq writer task)", ("Connection.__writer (",)),
    ("AMQP: reading frames, handing deliveries over", ("aiormq/", "aio_pika/", "pamqp/")),
    ("legato: decide (the pure core)", ("decide (legato/machine/decide.py)",)),
    ("legato: calling the handler", ("invoke (legato/worker/execute.py)",)),
    ("legato: dispatcher, task groups, other worker code", ("legato/", "anyio/")),
)
"""Where a sample's CPU went: the first category with a marker anywhere in its stack."""


def categorise(stack: tuple[str, ...]) -> str:
    if stack and stack[-1].startswith("Runner.run ("):
        return "the event loop itself (uvloop, in C)"
    work = [frame for frame in stack if not any(s in frame for s in SCAFFOLDING)]
    for label, markers in CATEGORIES:
        if any(marker in frame for frame in work for marker in markers):
            return label
    return "other"


def summarise(stacks: Counter[tuple[str, ...]], top: int = 25) -> str:
    total = sum(stacks.values()) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    for stack, count in stacks.items():
        if not stack:
            continue
        own[_function(stack[-1])] += count
        modules[_module(stack[-1])] += count
        for frame in set(stack):
            inclusive[_function(frame)] += count
    categories: Counter[str] = Counter()
    for stack, count in stacks.items():
        categories[categorise(stack)] += count
    lines = [f"{total} samples (on-CPU, GIL held)", "", "by what the worker was doing:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in categories.most_common()]
    lines += ["", "self time, by function:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "self time, by module:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in modules.most_common(top)]
    lines += ["", "including callees, by function (start-up, CLI and event-loop entry frames left out):"]
    work = Counter({name: n for name, n in inclusive.items() if not any(s in name for s in SCAFFOLDING)})
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in work.most_common(top * 2)]
    return "\n".join(lines)


def _spy(pid: int, raw: Path, rate: int) -> subprocess.Popen[bytes]:
    options = [
        "--format",
        "raw",
        "--output",
        str(raw),
        "--rate",
        str(rate),
        "--gil",
        "--nolineno",
        "--nonblocking",
    ]
    return subprocess.Popen(
        [PY_SPY, "record", "--pid", str(pid), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def profile(runs: int, out: Path, rate: int, events: bool, shape: Shape) -> str:
    system = LegatoEventsSystem() if events else LegatoSystem()
    await system.prepare()
    await system.reset()
    workers = Workers(system.worker_commands(1), system.worker_env(1), out / "worker.log")
    workers.start()
    raw = out / f"{system.name}-{shape.value}.raw"  # one per kind of profile: none overwrites another
    try:
        await wait_consuming(system, workers)
        spy = _spy(workers.procs[0].pid, raw, rate)
        began = time.time()
        await system.enqueue(shape, runs)
        await wait_finished(system, workers, runs)
        drained = time.time() - began
        os.kill(spy.pid, signal.SIGINT)  # py-spy writes its output on Ctrl-C
        await anyio.to_thread.run_sync(spy.wait)
    finally:
        await workers.stop()
        await system.close()
    summary = summarise(parse_raw(raw.read_text()))
    started = "published as events" if events else "started by Client.start"
    header = f"{system.name} worker, {runs} runs of {shape.value} ({started} while it ran): {drained:.1f} s"
    return f"{header}\n{summary}\n\nraw stacks: {raw}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "profile")
    parser.add_argument("--events", action="store_true", help="start the runs by events (legato-events)")
    parser.add_argument("--shape", choices=[s.value for s in Shape], default=Shape.CHAIN.value)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = anyio.run(profile, args.runs, args.out, args.rate, args.events, Shape(args.shape))
    (args.out / "summary.txt").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
