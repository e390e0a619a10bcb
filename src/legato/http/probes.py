"""A worker's own endpoints: ``/healthz``, ``/readyz`` and ``/metrics``.

``/healthz`` answers while the process's event loop does: liveness.
``/readyz`` is 200 only while the worker consumes and both the database and
the broker answer a ping, so a replica that lost either is taken out of
rotation (and a rolling deploy waits for the new one to be consuming).
"""

from __future__ import annotations

import anyio
from aiohttp import web

from legato.config import HttpSettings
from legato.http.security import guard, harden
from legato.telemetry.metrics import CONTENT_TYPE, Metrics
from legato.worker.runtime import Worker

PING_TIMEOUT = 2.0


async def readiness(worker: Worker) -> dict[str, str]:
    """Each check's verdict: ``ok`` or why not."""
    checks: dict[str, str] = {"consuming": "ok" if worker.consuming else "not consuming"}
    for name, ping in (("database", worker.store.ping), ("broker", worker.broker.ping)):
        try:
            with anyio.fail_after(PING_TIMEOUT):
                await ping()
        except TimeoutError:
            checks[name] = f"no answer within {PING_TIMEOUT:g}s"
        except Exception as exc:
            checks[name] = f"{type(exc).__name__}: {exc}"
        else:
            checks[name] = "ok"
    return checks


def probes_app(worker: Worker, metrics: Metrics | None, settings: HttpSettings) -> web.Application:
    app = web.Application(middlewares=[guard(settings)])
    harden(app)
    app.add_routes(probe_routes(worker, metrics))
    return app


def probe_routes(worker: Worker, metrics: Metrics | None) -> list[web.RouteDef]:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(request: web.Request) -> web.Response:
        checks = await readiness(worker)
        ready = all(v == "ok" for v in checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def metrics_page(request: web.Request) -> web.Response:
        if metrics is None:
            raise web.HTTPNotFound(text="metrics are off")
        await _refresh_depths(worker, metrics)
        await _refresh_schedules(worker, metrics)
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics_page)]


async def _refresh_depths(worker: Worker, metrics: Metrics) -> None:
    """Queue depths are read at scrape time; a broker that does not answer
    leaves the last values (readiness reports the broker)."""
    try:
        with anyio.fail_after(PING_TIMEOUT):
            depths = await worker.broker.depths()
    except Exception:
        return
    for queue, depth in depths.items():
        metrics.queue_depth.labels(queue).set(depth)


async def _refresh_schedules(worker: Worker, metrics: Metrics) -> None:
    """Each schedule's next fire time, read from the store at scrape time: a timer
    that no worker fires stays in the past, which is what the alert
    ``LegatoScheduleStoppedFiring`` looks for. Paused and deleted schedules go.
    Only the schedules of this worker's workflows: it is what could fire them."""
    try:
        with anyio.fail_after(PING_TIMEOUT):
            found = await worker.schedules.all()
    except Exception:
        return
    ours = set(worker.app.names())
    metrics.schedule_next_fire.clear()
    for schedule in found:
        if schedule.workflow in ours and schedule.timer_at is not None:
            metrics.schedule_next_fire.labels(schedule.name).set(schedule.timer_at)
