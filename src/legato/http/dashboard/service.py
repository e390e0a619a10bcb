"""What the dashboard shows and does, independent of HTTP.

Reads go to the store and to the insights (aggregates, cached for a moment so
that many open pages cost the database one query each); operator actions go
through :class:`~legato.client.Client`, so the pure core validates them and the
history records who did what.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from legato import views as shapes
from legato.app import App, UnknownWorkflow
from legato.broker.base import Broker
from legato.client import Client
from legato.errors import LegatoError, RunNotFound
from legato.filters import parse_when, parse_where
from legato.http.dashboard import views
from legato.http.dashboard.layout import drawable
from legato.machine.definition import Workflow
from legato.machine.recovery import replay_refusal
from legato.machine.run import Run, RunStatus
from legato.machine.vocabulary import DeadLetterStatus
from legato.observe import Observer
from legato.store.base import DeadLetterRecord
from legato.store.insights import Insights, Throughput
from legato.store.ports import TransitionStore

T = TypeVar("T")


class BadRequest(LegatoError):
    """The request itself is malformed (not the action it asks for)."""


@dataclass(frozen=True)
class Range:
    key: str
    span: float
    bucket: float


MAX_PAGE = 500
"""The most rows one page of runs or dead letters holds."""
LETTER_STATUSES = tuple(DeadLetterStatus)

CLOSED_SECONDS = 300.0
"""How long the finished buckets of a chart are reused (a run resumed by an
operator moves to the current bucket; its old one is corrected after this)."""

RANGES = {
    "1h": Range("1h", 3600, 300),
    "24h": Range("24h", 86400, 3600),
    "7d": Range("7d", 7 * 86400, 3600),
    "30d": Range("30d", 30 * 86400, 86400),
}


@dataclass(frozen=True)
class RunFilters:
    """The runs list's filters besides status and workflow (docs/concepts.md, search attributes)."""

    where: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None
    since: float | None = None
    until: float | None = None

    @classmethod
    def parse(cls, where: Sequence[str], key: str | None, since: str | None, until: str | None) -> RunFilters:
        """From the query string; BadRequest names what is malformed."""
        now = time.time()
        try:
            return cls(
                parse_where(where),
                key or None,
                parse_when(since, now) if since else None,
                parse_when(until, now) if until else None,
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from None


class Dashboard:
    def __init__(
        self,
        store: TransitionStore,
        insights: Insights,
        app: App | None = None,
        broker: Broker | None = None,
        observer: Observer | None = None,
        cache_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.insights = insights
        self.app = app
        self.broker = broker
        self.observer = observer
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Any]] = {}
        self._closed: dict[str, tuple[tuple[str, float, float], float, list[Throughput]]] = {}

    async def _cached(self, key: str, produce: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_seconds:
            value: T = hit[1]
            return value
        value = await produce()
        self._cache[key] = (now, value)
        return value

    def client(self, actor: str) -> Client:
        return Client(self.store, self.broker, self.app, actor=actor, observer=self.observer)

    # -- reads -------------------------------------------------------------------

    async def overview(self, range_key: str) -> dict[str, Any]:
        chosen = RANGES.get(range_key)
        if chosen is None:
            raise BadRequest(f"unknown range {range_key!r}; use one of {', '.join(RANGES)}")

        async def produce() -> dict[str, Any]:
            until = time.time()
            since = math.floor((until - chosen.span) / chosen.bucket) * chosen.bucket
            active = await self.insights.active_counts()
            buckets = await self._throughput(chosen, since, until)
            steps = await self.insights.step_stats(since, until + 1)
            errors = await self.insights.error_patterns(since, until + 1, 20)
            groups = await self.store.group_dead_letters("error")
            return {
                "range": {"key": chosen.key, "since": since, "until": until, "bucket": chosen.bucket},
                **views.overview_json(active, buckets, steps, errors),
                "dead_letters": {
                    "open": sum(g.count for g in groups),
                    "groups": [shapes.group_json(g) for g in groups[:10]],
                },
            }

        return await self._cached(f"overview:{chosen.key}", produce)

    async def _throughput(self, chosen: Range, since: float, until: float) -> list[Throughput]:
        """Buckets that are over change (almost) never: they are read once per
        ``CLOSED_SECONDS``; only the current bucket is read every time."""
        boundary = math.floor(until / chosen.bucket) * chosen.bucket
        key = (chosen.key, since, boundary)
        hit = self._closed.get(chosen.key)
        now = time.monotonic()
        if hit is None or hit[0] != key or now - hit[1] > CLOSED_SECONDS:
            closed = await self.insights.throughput(since, boundary, chosen.bucket)
            self._closed[chosen.key] = (key, now, closed)
        else:
            closed = hit[2]
        return [*closed, *await self.insights.throughput(boundary, until + 1, chosen.bucket)]

    async def runs(
        self,
        status: str | None,
        workflow: str | None,
        before: float | None,
        limit: int,
        filters: RunFilters | None = None,
    ) -> dict[str, Any]:
        if status is not None and status not in {s.value for s in RunStatus}:
            raise BadRequest(f"unknown status {status!r}")
        client = self.client("dashboard")
        more = filters or RunFilters()
        found = await client.runs(
            status,
            workflow,
            min(max(limit, 1), MAX_PAGE),
            before,
            where=more.where,
            key=more.key,
            since=more.since,
            until=more.until,
        )
        return {
            "runs": [views.run_summary(r) for r in found],
            "next": found[-1].created_at if len(found) == limit else None,
            "workflows": sorted(self.app.names()) if self.app else [],
        }

    async def run(self, run_id: str) -> dict[str, Any]:
        run = await self.store.load_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        history = await self.store.history(run_id)
        workflow = self._workflow(run)
        graph = None
        if workflow is not None:
            graph = {**drawable(workflow.describe()), **views.graph_marks(run, history)}
        letters = [
            _with_refusal(d, {run.id: run})
            for d in await self.store.list_dead_letters(run.workflow, status=None, limit=1000)
            if d.run_id == run.id
        ]
        return {
            "run": views.run_detail(run),
            "children": [views.run_summary(c) for c in await self.store.children(run.id)],
            "history": [shapes.history_json(h) for h in history],
            "graph": graph,
            "actions": views.legal_actions(run, workflow),
            "can_act": self.app is not None,
            "dead_letters": letters,
        }

    def _workflow(self, run: Run) -> Workflow | None:
        if self.app is None:
            return None
        try:
            return self.app.workflow(run.workflow, run.workflow_version)
        except UnknownWorkflow:
            return None

    async def workflows(self) -> list[dict[str, Any]]:
        if self.app is None:
            return []
        return [{**wf.describe(), "graph": drawable(wf.describe())} for wf in self.app.workflows()]

    async def dead_letters(self, status: str | None, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of dead letters (newest first), their failure patterns and how many there are."""
        if status is not None and status not in LETTER_STATUSES:
            raise BadRequest(f"unknown status {status!r}; use {', '.join(LETTER_STATUSES)} or all")
        letters = await self.store.list_dead_letters(None, status, limit, offset=offset)
        groups = await self.store.group_dead_letters("error", None, status)
        runs = await self._runs_of(letters)
        return {
            "letters": [_with_refusal(d, runs) for d in letters],
            "groups": [shapes.group_json(g) for g in groups],
            "total": sum(g.count for g in groups),
            "offset": offset,
            "limit": limit,
        }

    async def dead_letter(self, letter_id: int) -> dict[str, Any]:
        letter = await self.store.get_dead_letter(letter_id)
        if letter is None:
            raise LookupError(f"no dead letter with id {letter_id}")
        return _with_refusal(letter, await self._runs_of([letter]))

    async def _runs_of(self, letters: list[DeadLetterRecord]) -> dict[str, Run | None]:
        """The runs of the open step dead letters, to tell which can be replayed.
        Read at once: the Postgres store answers loads made together with one statement."""
        wanted = {d.run_id for d in letters if _replayable_kind(d) and d.run_id is not None}
        runs: dict[str, Run | None] = {}

        async def load(run_id: str) -> None:
            runs[run_id] = await self.store.load_run(run_id)

        async with anyio.create_task_group() as group:
            for run_id in wanted:
                group.start_soon(load, run_id)
        return runs

    # -- actions -----------------------------------------------------------------

    async def act(self, run_id: str, action: str, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """Retry, skip, cancel, pause, resume or signal; the engine refuses what is not legal now."""
        client = self.client(actor)
        state = _optional_text(body, "state")
        if action == "retry":
            run = await client.retry(run_id, state, _object(body, "data"))
        elif action == "skip":
            run = await client.skip(run_id, state, _object(body, "output"))
        elif action == "cancel":
            compensate = body.get("compensate", True)
            if not isinstance(compensate, bool):
                raise BadRequest("compensate must be true or false")
            run = await client.cancel(run_id, compensate, _optional_text(body, "reason") or "")
        elif action == "pause":
            run = await client.pause(run_id, _optional_text(body, "reason") or "")
        elif action == "resume":
            run = await client.resume(run_id)
        elif action == "signal":
            name = _optional_text(body, "name")
            if not name:
                raise BadRequest("a signal needs a name")
            run = await client.signal(run_id, name, _object(body, "data"))
        else:
            raise BadRequest(f"unknown action {action!r}; use retry, skip, cancel, pause, resume or signal")
        self._cache.clear()
        self._closed.clear()
        return {"run": views.run_summary(run)}

    async def schedules(self) -> list[dict[str, Any]]:
        found = await self.client("dashboard").schedules.all()
        return [shapes.schedule_json(s) for s in found]

    async def schedule_act(self, name: str, action: str, actor: str) -> dict[str, Any]:
        """pause | resume | trigger (a trigger needs the app's workflows)."""
        schedules = self.client(actor).schedules
        if action == "pause":
            return shapes.schedule_json(await schedules.pause(name))
        if action == "resume":
            return shapes.schedule_json(await schedules.resume(name))
        if action == "trigger":
            fired = await schedules.trigger(name)
            started = fired.created if fired is not None else ()
            return {"runs": [c.run.id for c in started]}
        raise BadRequest(f"unknown schedule action {action!r}: use pause, resume or trigger")

    async def resolve(self, letter_id: int, actor: str) -> dict[str, Any]:
        if await self.store.get_dead_letter(letter_id) is None:
            raise LookupError(f"no dead letter with id {letter_id}")
        letter = await self.client(actor).resolve(letter_id)
        self._cache.clear()
        return {"resolved": letter_id, "letter": shapes.dead_letter_json(letter)}

    async def replay(self, letter_id: int, actor: str) -> dict[str, Any]:
        await self.dead_letter(letter_id)  # an unknown id is a 404, not a refusal
        run = await self.client(actor).replay(letter_id)
        self._cache.clear()
        self._closed.clear()
        return {"replayed": letter_id, "run": views.run_summary(run) if run is not None else None}


def _replayable_kind(letter: DeadLetterRecord) -> bool:
    return letter.status == DeadLetterStatus.OPEN and letter.source == "step" and letter.run_id is not None


def _with_refusal(letter: DeadLetterRecord, runs: Mapping[str, Run | None]) -> dict[str, Any]:
    """The dead letter's JSON with ``replay_refusal``: why Replay cannot work now
    (the page disables it and shows why), or None."""
    refusal = None
    if _replayable_kind(letter):
        assert letter.run_id is not None
        run = runs.get(letter.run_id)
        refusal = (
            f"run {letter.run_id} no longer exists" if run is None else replay_refusal(run, letter.state)
        )
    return {**shapes.dead_letter_json(letter), "replay_refusal": refusal}


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def _object(body: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"{key} must be a JSON object")
    return value
