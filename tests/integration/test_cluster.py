"""Several apps on one namespace, in real worker processes on RabbitMQ and Postgres.

Two different apps (billing, shipping) and an old and a new version of one
(shipping v1 and v2, which adds the ``returns`` workflow and version 2 of
``ship``), side by side: every event some app wants starts its run, none is
dead-lettered, and an event nobody wants is, with its reason.
"""

from __future__ import annotations

import signal
from pathlib import Path

import orjson

from legato import RunStatus
from legato.broker.rabbitmq import RabbitMQBroker
from legato.client import Client
from legato.store.postgres import PostgresStore
from tests.apps import cluster
from tests.conftest import worker_env
from tests.integration.harness import all_runs, eventually, spawn_worker

EVENTS = {"invoice.due": "invoice", "order.paid": "ship", "order.returned": "returns"}
PER_EVENT = 20


async def test_two_apps_and_two_versions_of_one_share_a_namespace(
    pg_store: PostgresStore, rabbit: RabbitMQBroker, pg_schema: str, namespace: str, tmp_path: Path
) -> None:
    env = worker_env(pg_schema, namespace)
    log = tmp_path / "workers.log"
    specs = ["tests.apps.cluster:billing", "tests.apps.cluster:shipping_v1", "tests.apps.cluster:shipping_v2"]
    workers = [spawn_worker(spec, env, "--concurrency", "8", log=log) for spec in specs]
    try:
        # Every worker has bound its app's queue once it has started.
        await eventually(lambda: log.read_text().count("worker started") == len(specs), timeout=60)
        for i in range(PER_EVENT):
            for event in EVENTS:
                await rabbit.publish_event(event, orjson.dumps({"i": i}), message_id=f"{event}-{i}")
        for i in range(3):
            await rabbit.publish_event(f"nobody.wants.{i}", b"{}", message_id=f"nobody-{i}")

        async def all_done() -> bool:
            runs = await all_runs(pg_store)
            return len(runs) == PER_EVENT * len(EVENTS) and all(r.finished for r in runs)

        await eventually(all_done, timeout=120, interval=0.2)
        client = Client(pg_store, None, cluster.billing)
        letters = await eventually(lambda: _at_least(client, 3), timeout=30)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=30) for process in workers]
    assert codes == [0, 0, 0], log.read_text()
    runs = await all_runs(pg_store)
    assert all(r.status is RunStatus.SUCCEEDED for r in runs), [(r.workflow, r.status) for r in runs]
    by_workflow = {w: sorted(r.input["i"] for r in runs if r.workflow == w) for w in EVENTS.values()}
    assert by_workflow == {w: list(range(PER_EVENT)) for w in EVENTS.values()}
    # ship runs of both versions: each started by whichever shipping worker took the event,
    # each step run by a worker of its version.
    assert {r.data["version"] for r in runs if r.workflow == "ship"} <= {1, 2}
    assert all(r.data["version"] == r.workflow_version for r in runs)
    # Only the events nobody wants are dead letters, each with its reason.
    assert sorted(letter.reason for letter in letters) == [
        f"no workflow is triggered by event 'nobody.wants.{i}'" for i in range(3)
    ]


async def _at_least(client: Client, count: int) -> list | None:  # type: ignore[type-arg]
    found = await client.dead_letters(status=None)
    return found if len(found) >= count else None


async def test_a_signal_message_reaches_the_app_whose_run_it_is(pg_schema: str) -> None:
    """Every worker consumes the signals; one whose app does not have the run's
    workflow hands the signal to a worker that does, and nothing is dead-lettered."""
    from legato import App, Approval, Succeed, Workflow
    from legato.broker.base import Topology
    from legato.broker.memory import MemoryBroker
    from legato.worker.runtime import WorkerSettings
    from tests.conftest import PG_DSN
    from tests.integration.harness import running

    approvals = App(
        [
            Workflow(
                "review", start="wait", states={"wait": Approval("approve", next="end"), "end": Succeed()}
            )
        ],
        name="approvals",
    )
    stores = [PostgresStore(PG_DSN, pg_schema, min_size=1, max_size=4) for _ in range(2)]
    broker = MemoryBroker(Topology("signals"))
    other = broker.sibling(broker.topology)
    settings = WorkerSettings(concurrency=4, retry_pause=0.05, timer_poll_interval=0.05)
    async with (
        running(cluster.billing, stores[0], broker, settings),
        running(approvals, stores[1], other, settings),
    ):
        client = Client(stores[1], other, approvals)
        run = await client.start("review", {})
        for n in range(5):  # some land on the billing worker first, whichever consumes first
            await client.send_signal_message(run.id, "approve", {"by": "dora", "n": n})
        done = await client.wait(run.id, timeout=30)
        assert done.status is RunStatus.SUCCEEDED
        # The other four were refused by the finished run: dead letters naming that, and only that.
        letters = await eventually(lambda: _at_least(client, 4))
        assert all("approve" in letter.reason and "refused" in letter.reason for letter in letters), letters
