"""``legato demo``: the order workflow end to end on the embedded default."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import click
import orjson

from legato.broker.base import Topology
from legato.broker.memory import MemoryBroker
from legato.cli.render import console, dead_letters_table, history_table, plain, runs_table
from legato.cli.runner import run_async
from legato.client import Client
from legato.clock import SystemClock
from legato.machine.run import Phase, Run
from legato.store.base import DeadLetterRecord, HistoryEntry
from legato.store.sqlite import SqliteStore
from legato.worker.runtime import Worker, WorkerSettings

ORDERS: list[dict[str, Any]] = [
    {
        "order_id": "A-100",
        "customer": "ada",
        "address": "1 Main St",
        "items": [{"sku": "book", "qty": 2, "price": 12.5}],
    },
    {
        "order_id": "B-200",
        "customer": "flaky-bank",
        "address": "2 High St",
        "items": [{"sku": "lamp", "qty": 1, "price": 80}],
    },
    {
        "order_id": "C-300",
        "customer": "grace",
        "address": "3 Park Ave",
        "items": [{"sku": "sofa", "qty": 1, "price": 2400}],
    },
    {
        "order_id": "D-400",
        "customer": "linus",
        "address": "nowhere",
        "items": [{"sku": "desk", "qty": 1, "price": 300}],
    },
]


@dataclass
class DemoResult:
    runs: list[Run]
    histories: dict[str, list[HistoryEntry]]
    dead_letters: list[DeadLetterRecord]
    events: int
    elapsed: float
    scheduled: Run
    """The run the ``daily-report`` schedule started once the demo's clock jumped to its tick."""
    tick: float


class FastForwardClock(SystemClock):
    """The system's clock, which the demo can move forward to a schedule's next tick
    instead of waiting for it (ages within the process are left alone)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return super().now() + self.offset

    def jump_to(self, at: float) -> None:
        self.offset += max(0.0, at - self.now())


async def run_demo(path: Path) -> DemoResult:
    from legato.demo.orders import app

    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    store = SqliteStore(path)
    await store.open()  # shared with the worker; closed below, after the reports
    broker = MemoryBroker(Topology("demo"))
    settings = WorkerSettings(concurrency=16, timer_poll_interval=0.05, relay_interval=0.2)
    clock = FastForwardClock()
    worker = Worker(app, store, broker, settings, clock=clock)
    client = Client(store, broker, app, clock=clock, actor="demo:operator")
    began = time.monotonic()
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run, name="worker")
        await worker.started.wait()
        for order in ORDERS:
            await broker.publish_event(
                "order.placed", orjson.dumps(order), message_id=f"msg-{order['order_id']}"
            )
        # The same message again (an at-least-once redelivery): no second run.
        await broker.publish_event("order.placed", orjson.dumps(ORDERS[0]), message_id="msg-A-100")
        # A malformed event: dead-lettered with its reason, the worker goes on.
        await broker.publish_event("order.placed", b"{not json", message_id="msg-broken")
        runs = await _wait_for_runs(client, len(ORDERS))
        big = next(r for r in runs if r.input["order_id"] == "C-300")
        await _approve_when_waiting(client, big.id)
        finished = [await client.wait(r.id, timeout=30) for r in runs]
        await _wait_for_dead_letters(client, 2)
        scheduled, tick = await _fire_the_schedule(client, clock, worker)
        worker.stop()
    try:
        histories = {r.id: await store.history(r.id) for r in finished}
        letters = await store.list_dead_letters(status=None)
    finally:
        await store.close()
    order = {o["order_id"]: i for i, o in enumerate(ORDERS)}
    finished.sort(key=lambda r: order[r.input["order_id"]])
    return DemoResult(
        finished, histories, letters, len(ORDERS) + 2, time.monotonic() - began, scheduled, tick
    )


async def _fire_the_schedule(client: Client, clock: FastForwardClock, worker: Worker) -> tuple[Run, float]:
    """Jump to the schedule's next tick (a weekday, 09:00 in Paris) and let the
    worker's timer poller fire it, as it would after the real wait."""
    schedule = await client.schedules.get("daily-report")
    assert schedule.timer_at is not None
    clock.jump_to(schedule.timer_at + 0.5)
    worker.timers.wake(schedule.timer_at)
    with anyio.fail_after(30):
        while not (found := await client.runs(workflow="daily-report")):
            await anyio.sleep(0.02)
    return await client.wait(found[0].id, timeout=30), schedule.next_tick


async def _wait_for_runs(client: Client, count: int) -> list[Run]:
    with anyio.fail_after(30):
        while len(found := await client.runs(limit=100)) < count:
            await anyio.sleep(0.02)
    return found


async def _approve_when_waiting(client: Client, run_id: str) -> None:
    with anyio.fail_after(30):
        while not any(t.phase is Phase.AWAITING_SIGNAL for t in (await client.get(run_id)).tokens):
            await anyio.sleep(0.02)
    await client.signal(run_id, "approve", {"approved_by": "demo:operator"})


async def _wait_for_dead_letters(client: Client, count: int) -> None:
    with anyio.fail_after(30):
        while len(await client.dead_letters(status=None)) < count:
            await anyio.sleep(0.02)


@click.command()
@click.option(
    "--db",
    "db_path",
    default=".legato/demo.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="SQLite file for the demo (recreated on every run).",
)
def demo(db_path: str) -> None:
    """Run the order workflow end to end on the embedded default and print what happened."""
    result = run_async(lambda: run_demo(Path(db_path)))
    out = console()
    out.print(
        plain("legato demo", "bold")
        + plain(
            f": {result.events} events published on the in-process broker, "
            f"{len(result.runs)} runs, SQLite at {db_path}, {result.elapsed:.1f} s\n"
        )
    )
    out.print(runs_table(result.runs, title="Runs (one per order; the duplicate event started none)"))
    for run in result.runs:
        out.print()
        out.print(
            plain(run.input["order_id"], "bold")
            + plain(f" ({run.input['customer']}, total {run.data.get('total')}):")
        )
        out.print(history_table(run, result.histories[run.id]))
    out.print()
    out.print(dead_letters_table(result.dead_letters))
    tick = datetime.fromtimestamp(result.tick, ZoneInfo("Europe/Paris")).strftime("%a %Y-%m-%d %H:%M %Z")
    out.print(
        f"\n[bold]Schedule daily-report[/] (cron '0 9 * * MON-FRI', Europe/Paris): the demo's clock "
        f"jumped to its next tick, {tick}; it fired and started run {result.scheduled.id} "
        f"({result.scheduled.status.value}), key {result.scheduled.idempotency_key}.\n"
        "Every replica could fire it: the tick's key names the schedule and the tick's time, so it "
        "starts one run. See: legato schedule show daily-report"
    )
    out.print(
        "\nWhat happened: A-100 went straight through; B-200's payment failed twice and "
        "succeeded on its third attempt;\nC-300 waited for approval (the demo sent the "
        "'approve' signal); D-400 could not ship, so its payment\nwas refunded and its "
        "stock released (saga) and it ended compensated; the malformed event and the\n"
        "failed shipment are dead letters. Inspect with: legato runs / legato show RUN_ID "
        f"(LEGATO_EMBEDDED_PATH={db_path})."
    )


COMMANDS = [demo]
