"""HTTP ingress: events and runs over HTTP, on the worker's HTTP server.

POST /events/{name}               start the runs an event triggers (202 once committed)
POST /workflows/{name}/runs       start a run; ``?wait=SECONDS`` answers with its result
POST /runs/{id}/signals/{name}    send a run a signal
GET  /runs/{id}                   a run

An event is accepted when its runs are committed to the database, never
before: the 202 names them. It is routed as an AMQP event is: the runs of
this app's workflows start here, and the event is published on the events
exchange too, for the other apps on the namespace that trigger on it (their
runs are not named; an event no app wants is dead-lettered there, with its
reason). The copy carries the workflows started here (``x-legato-started``),
so this app's workers do not start them again. Its idempotency key (the ``Idempotency-Key``
header, else the hash of the name and the body) is the same key an AMQP
event's ``message_id`` is, so an event sent twice, over HTTP or AMQP or both,
starts one run per workflow (docs/events.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from aiohttp import web

from legato.app import App
from legato.broker.base import APP_HEADER, PRIORITY_HEADER, STARTED_HEADER
from legato.clock import Clock
from legato.config import IngressSettings
from legato.engine import Engine, Local, Started
from legato.errors import RunNotFound
from legato.http.requests import (
    IDEMPOTENCY_HEADER,
    BadRequest,
    check_key,
    check_name,
    content_key,
    idempotency_key,
    json_object,
    json_response,
    parse_priority,
    priority_header,
    raw_body,
    trace_context,
    wait_seconds,
)
from legato.machine.commands import Rejection
from legato.machine.definition import RESERVED_EVENT_PREFIX, Priority
from legato.machine.events import SignalReceived
from legato.machine.run import Run
from legato.machine.values import JSON
from legato.views import run_json

RUN_FIELDS = frozenset({"input", "key", "priority"})
FIRST_POLL = 0.01
LONGEST_POLL = 0.25


@dataclass(frozen=True)
class Accepted:
    event: str
    key: str
    runs: list[Started]

    def json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "key": self.key,
            "runs": [
                {"workflow": s.run.workflow, "run_id": s.run.id, "created": s.created} for s in self.runs
            ],
        }


class Ingress:
    """Starts runs for HTTP callers through the worker's engine (so eager
    dispatch can run the first step right here)."""

    def __init__(
        self,
        app: App,
        engine: Engine,
        clock: Clock,
        settings: IngressSettings,
        local: Local | None = None,
    ) -> None:
        self.app = app
        self.engine = engine
        self.clock = clock
        self.settings = settings
        self.local = local

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/events/{name}", self.post_event),
            web.post("/workflows/{name}/runs", self.post_run),
            web.post("/runs/{run_id}/signals/{name}", self.post_signal),
            web.get("/runs/{run_id}", self.get_run),
        ]

    async def accept(
        self,
        name: str,
        body: Mapping[str, JSON],
        key: str,
        priority: Priority | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> Accepted:
        """Start one run of each workflow ``name`` triggers; return once they are committed.

        A key seen before returns the runs it started; the same key with another
        body is refused (422), as the Idempotency-Key draft asks, and starts nothing.
        """
        workflows = self.app.triggered_by(check_name(name, "event"))
        broker = self.engine.broker
        if not workflows and (broker is None or name.startswith(RESERVED_EVENT_PREFIX)):
            raise BadRequest(f"no workflow is triggered by event {name!r}", 404)
        runs: list[Started] = []
        for workflow in workflows:
            started = await self.engine.start(
                workflow.name, body, key=key, priority=priority, trace_context=trace, local=self.local
            )
            _same_input(started, body, key)
            runs.append(started)
        if broker is not None:
            # For the other apps of the namespace (after the runs here are committed:
            # a failed publish fails the request, and its retry starts nothing twice).
            headers = {
                **(trace or {}),
                APP_HEADER: self.app.name,
                STARTED_HEADER: ",".join(w.name for w in workflows),
            }
            if priority is not None:
                headers[PRIORITY_HEADER] = priority.name.lower()
            await broker.publish_event(name, orjson.dumps(dict(body)), message_id=key, headers=headers)
        return Accepted(name, key, runs)

    async def post_event(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        key = idempotency_key(request)
        raw = await raw_body(request)
        body = json_object(raw, f"event {name!r}")
        priority = priority_header(request)
        accepted = await self.accept(
            name, body, key or content_key(name, raw), priority, trace_context(request)
        )
        return json_response(accepted.json(), 202)

    async def post_run(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.app.names():
            raise BadRequest(
                f"unknown workflow {name!r}; this worker has: {', '.join(self.app.names())}", 404
            )
        wait = wait_seconds(request, self.settings.max_wait)
        header_key = idempotency_key(request)
        spec = json_object(await raw_body(request), "the body", empty_ok=True)
        unknown = sorted(spec.keys() - RUN_FIELDS)
        if unknown:
            raise BadRequest(f"unknown field {unknown[0]!r}; a run takes {', '.join(sorted(RUN_FIELDS))}")
        given = spec.get("input", {})
        if not isinstance(given, dict):
            raise BadRequest(f"input must be a JSON object, got {type(given).__name__}")
        key = _run_key(spec.get("key"), header_key)
        priority = parse_priority(spec["priority"], "priority") if spec.get("priority") is not None else None
        started = await self.engine.start(
            name, given, key=key, priority=priority, trace_context=trace_context(request), local=self.local
        )
        if key is not None:
            _same_input(started, given, key)
        run = started.run
        if wait:
            run = await self._wait(run, wait)
        body = {"created": started.created, "run": run_json(run)}
        if run.finished:
            return json_response(body, 200)
        return json_response(body, 202, {"Location": f"/runs/{run.id}"})

    async def post_signal(self, request: web.Request) -> web.Response:
        run_id, name = request.match_info["run_id"], check_name(request.match_info["name"], "signal")
        data = json_object(await raw_body(request), f"signal {name!r}", empty_ok=True)
        try:
            outcome = await self.engine.apply(run_id, SignalReceived(name, data, "http"))
        except RunNotFound as exc:
            raise BadRequest(str(exc), 404) from None
        if isinstance(outcome, Rejection):
            raise BadRequest(f"signal {name!r} refused: {outcome.reason}", 409)
        return json_response({"run": run_json(outcome.run)})

    async def get_run(self, request: web.Request) -> web.Response:
        run = await self.engine.store.load_run(request.match_info["run_id"])
        if run is None:
            raise BadRequest(f"no run with id {request.match_info['run_id']!r}", 404)
        return json_response({"run": run_json(run)})

    async def _wait(self, run: Run, seconds: float) -> Run:
        """The run once finished, or as it is when ``seconds`` are up.

        The run may finish on any replica, so this reads the store, more
        slowly as time passes (10 ms at first, at most every 250 ms).
        """
        # Only the sleeps are bounded: a read cut off halfway would cost its pooled connection.
        deadline = self.clock.monotonic() + seconds
        pause = FIRST_POLL
        while not run.finished:
            left = deadline - self.clock.monotonic()
            if left <= 0:
                break
            await anyio.sleep(min(pause, left))
            pause = min(pause * 2, LONGEST_POLL)
            run = await self.engine.store.load_run(run.id) or run
        return run


def _run_key(body_key: Any, header_key: str | None) -> str | None:
    if body_key is None:
        return header_key
    if not isinstance(body_key, str) or not body_key:
        raise BadRequest("key must be a non-empty string")
    check_key(body_key, "key")
    if header_key is not None and header_key != body_key:
        raise BadRequest(f"the body's key and the {IDEMPOTENCY_HEADER} header differ; send one")
    return body_key


def _same_input(started: Started, body: Mapping[str, JSON], key: str) -> None:
    if not started.created and started.run.input != dict(body):
        raise BadRequest(
            f"key {key!r} already started run {started.run.id} with another body; use a new key",
            422,
        )
