"""The dashboard's HTTP side: the page, its assets and the JSON API.

GET  /api/overview?range=24h            status tiles, business and execution figures
GET  /api/runs?status=&workflow=&before= the runs list (newest first, paged by ``before``);
     &where=path=value (repeatable) &key= &since= &until=  search attributes, key, creation time
GET  /api/runs/{id}                      a run: data, history, graph, legal actions
POST /api/runs/{id}/{action}             retry | skip | cancel | pause | resume | signal (JSON body)
GET  /api/dead-letters?status=&offset=&limit=  a page of dead letters and their failure patterns
GET  /api/dead-letters/{id}              one dead letter (inspect)
POST /api/dead-letters/{id}/replay       replay it
POST /api/dead-letters/{id}/resolve      close it without a replay
GET  /api/schedules                      schedules with their next fire time
POST /api/schedules/{name}/{action}      pause | resume | trigger
GET  /api/workflows                      every workflow's graph
GET  /api/stream                         server-sent events: ``change`` when data moved
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from legato.config import HttpSettings
from legato.errors import LegatoError, OperationRefused, RunNotFound
from legato.http.dashboard.live import Watcher, event
from legato.http.dashboard.params import LARGEST_ID, int_param, letter_id, text, text_param, time_param
from legato.http.dashboard.service import MAX_PAGE, BadRequest, Dashboard, RunFilters
from legato.http.security import USER, guard, harden
from legato.redact import redact_text

STATIC = resources.files(__package__).joinpath("static")
ASSETS = {
    "app.js": "text/javascript",
    "morph.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
    "dagre.min.js": "text/javascript",
}
VENDORED = frozenset({"dagre.min.js"})
"""Third-party files, under static/vendor/ with their licences (see its README)."""
KEEPALIVE = 15.0
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Legato's errors as JSON with a fitting status; what was refused says why."""
    try:
        return await handler(request)
    except OperationRefused as exc:
        return _json({"error": str(exc)}, 409)
    except (RunNotFound, LookupError) as exc:
        return _json({"error": str(exc).strip("'\"")}, 404)
    except BadRequest as exc:
        return _json({"error": str(exc)}, 400)
    except LegatoError as exc:
        return _json({"error": redact_text(str(exc))}, 503)


def actor_of(request: web.Request) -> str:
    """``dashboard:NAME`` for a named token or a trusted proxy's user, else ``dashboard``."""
    name = request.get(USER)
    return f"dashboard:{name}" if name else "dashboard"


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    return value


def dashboard_app(dashboard: Dashboard, watcher: Watcher, settings: HttpSettings) -> web.Application:
    public = {"/", "/favicon.svg", *(f"/static/{name}" for name in ASSETS)}
    app = web.Application(middlewares=[guard(settings, public=public), errors])
    harden(app, CSP)
    api = _Api(dashboard, watcher)
    app.add_routes(
        [
            web.get("/", index),
            web.get("/favicon.svg", favicon),
            web.get("/static/{name}", asset),
            web.get("/api/overview", api.overview),
            web.get("/api/runs", api.runs),
            web.get("/api/runs/{run_id}", api.run),
            web.post("/api/runs/{run_id}/{action}", api.act),
            web.get("/api/dead-letters", api.dead_letters),
            web.get(r"/api/dead-letters/{letter_id:\d+}", api.dead_letter),
            web.post(r"/api/dead-letters/{letter_id:\d+}/replay", api.replay),
            web.post(r"/api/dead-letters/{letter_id:\d+}/resolve", api.resolve),
            web.get("/api/schedules", api.schedules),
            web.post("/api/schedules/{name}/{action}", api.schedule_act),
            web.get("/api/workflows", api.workflows),
            web.get("/api/stream", api.stream),
        ]
    )
    return app


async def index(request: web.Request) -> web.Response:
    page = STATIC.joinpath("index.html").read_text("utf-8")
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


async def favicon(request: web.Request) -> web.Response:
    return web.Response(body=STATIC.joinpath("favicon.svg").read_bytes(), content_type="image/svg+xml")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    path = STATIC.joinpath("vendor", name) if name in VENDORED else STATIC.joinpath(name)
    return web.Response(body=path.read_bytes(), content_type=ASSETS[name])


class _Api:
    """The JSON API and the event stream, over one dashboard service and its watcher."""

    def __init__(self, dashboard: Dashboard, watcher: Watcher) -> None:
        self.dashboard = dashboard
        self.watcher = watcher

    async def overview(self, request: web.Request) -> web.Response:
        return _json(await self.dashboard.overview(request.query.get("range", "24h")))

    async def runs(self, request: web.Request) -> web.Response:
        before = time_param(request, "before")
        limit = int_param(request, "limit", 50, 1, MAX_PAGE)
        status, workflow = text_param(request, "status"), text_param(request, "workflow")
        filters = RunFilters.parse(
            [text(where, "where") for where in request.query.getall("where", [])],
            text_param(request, "key"),
            text_param(request, "since"),
            text_param(request, "until"),
        )
        return _json(await self.dashboard.runs(status, workflow, before, limit, filters))

    async def run(self, request: web.Request) -> web.Response:
        return _json(await self.dashboard.run(text(request.match_info["run_id"], "the run id")))

    async def act(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return _json(
            await self.dashboard.act(
                text(request.match_info["run_id"], "the run id"),
                request.match_info["action"],
                body,
                actor_of(request),
            )
        )

    async def dead_letters(self, request: web.Request) -> web.Response:
        status = text_param(request, "status") or "open"
        offset = int_param(request, "offset", 0, 0, LARGEST_ID)
        limit = int_param(request, "limit", 100, 1, MAX_PAGE)
        return _json(await self.dashboard.dead_letters(None if status == "all" else status, offset, limit))

    async def dead_letter(self, request: web.Request) -> web.Response:
        return _json(await self.dashboard.dead_letter(letter_id(request)))

    async def replay(self, request: web.Request) -> web.Response:
        return _json(await self.dashboard.replay(letter_id(request), actor_of(request)))

    async def resolve(self, request: web.Request) -> web.Response:
        return _json(await self.dashboard.resolve(int(request.match_info["letter_id"]), actor_of(request)))

    async def schedules(self, request: web.Request) -> web.Response:
        return _json(await self.dashboard.schedules())

    async def schedule_act(self, request: web.Request) -> web.Response:
        info = request.match_info
        name = text(info["name"], "the schedule's name")
        return _json(await self.dashboard.schedule_act(name, info["action"], actor_of(request)))

    async def workflows(self, request: web.Request) -> web.Response:
        return _json(await self.dashboard.workflows())

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue = self.watcher.subscribe()
        try:
            if self.watcher.latest is not None:
                await response.write(event(self.watcher.latest))
            while True:
                try:
                    stamp = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
                else:
                    await response.write(event(stamp))
        except ConnectionResetError:
            pass
        finally:
            self.watcher.unsubscribe(queue)
        return response
