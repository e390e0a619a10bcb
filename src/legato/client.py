"""The Python client: start runs, inspect them, act on them as an operator.

Operator actions go through the same transition function as everything
else: an action that makes no sense for the run as it is raises
:class:`~legato.errors.OperationRefused` and changes nothing, and every
action is recorded in the run's history with who issued it.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import anyio
import orjson
from opentelemetry import propagate

from legato.app import App
from legato.broker.base import SIGNAL_ROUTING_KEY, Broker
from legato.clock import Clock, SystemClock
from legato.engine import Engine
from legato.errors import AmbiguousRunId, LegatoError, OperationRefused, RunNotFound
from legato.machine.commands import Decision, Rejection
from legato.machine.definition import Priority
from legato.machine.errors import ErrorInfo
from legato.machine.events import (
    CancelRequested,
    Event,
    PauseRequested,
    ResumeRequested,
    RetryRequested,
    SignalReceived,
    SkipRequested,
)
from legato.machine.run import TERMINAL_STATUSES, Run, RunStatus
from legato.machine.search import search_value
from legato.machine.signals import EarlySignal
from legato.machine.values import JSON, unstorable
from legato.machine.vocabulary import DeadLetterStatus
from legato.observe import Observer
from legato.outside import EXTERNAL_ERROR, settle_token
from legato.results import RunWaiters
from legato.scheduling.manage import Schedules, SchedulingStore
from legato.store.base import (
    DeadLetterGroup,
    DeadLetterRecord,
    HistoryEntry,
    ResolveDeadLetter,
    RunQuery,
)
from legato.store.ports import RunWatch, TransitionStore
from legato.store.rows import canonical_run_id

FALLBACK_POLL = 10.0
"""Seconds a waiter woken by notifications waits before reading its run anyway."""

SHORTEST_PREFIX = 4
"""Characters a short run id needs (as ``git`` asks of a short commit id)."""

CANDIDATES_SHOWN = 10
"""Runs an ambiguous short id lists."""


def _caller_trace() -> dict[str, str] | None:
    """The caller's trace context (a web request starting a run), if it is in one."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    found: dict[str, str] = {k: carrier[k] for k in ("traceparent", "tracestate") if k in carrier}
    return found or None


def _check_storable(value: JSON, what: str) -> None:
    problem = unstorable(value)
    if problem is not None:
        raise LegatoError(f"{what} cannot be stored: {problem}")


def default_actor(channel: str = "api") -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{channel}:{user}"


def _closed(record: DeadLetterRecord) -> str:
    """The refusal of an action on a dead letter that is no longer open."""
    return f"dead letter {record.id} was {record.status} by {record.resolved_by}"


@dataclass(frozen=True)
class ReplayReport:
    replayed: list[int]
    refused: dict[int, str]


class Client:
    def __init__(
        self,
        store: TransitionStore,
        broker: Broker | None = None,
        app: App | None = None,
        clock: Clock | None = None,
        actor: str | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.app = app
        self.clock = clock or SystemClock()
        self.actor = actor or default_actor()
        self._engine = Engine(app or App(), store, broker, self.clock, observer) if app is not None else None
        self._run_waiters: RunWaiters | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise LegatoError(
                "this needs the workflow definitions: give the client an App"
                " (--app / LEGATO_APP, or legato.connect(app=...))"
            )
        return self._engine

    @property
    def schedules(self) -> Schedules:
        """List, create, change, pause, resume, delete, trigger and backfill schedules
        (docs/events.md). Triggering and creating need the app's workflows."""
        if not hasattr(self.store, "fire_schedule"):
            raise LegatoError("this store keeps no schedules")
        store = cast(SchedulingStore, self.store)
        engine = self._engine or Engine(App(), self.store, self.broker, self.clock)
        return Schedules(self.app or App(), engine, store, self.clock)

    # -- runs -------------------------------------------------------------------

    async def start(
        self,
        workflow: str,
        input: Mapping[str, JSON] | None = None,
        *,
        key: str | None = None,
        priority: Priority | str | int | None = None,
    ) -> Run:
        level = Priority.parse(priority) if priority is not None else None
        _check_storable(input, "the input")
        started = await self.engine.start(
            workflow, dict(input or {}), key=key, priority=level, trace_context=_caller_trace()
        )
        return started.run

    async def get(self, run_id: str) -> Run:
        """The run with this id, or with the one id that starts with ``run_id``."""
        run = await self.store.load_run(await self.resolve_run_id(run_id))
        if run is None:
            raise RunNotFound(run_id)
        return run

    async def resolve_run_id(self, run_id: str) -> str:
        """A full run id from a full one or an unambiguous prefix of at least
        four characters (``3f2a1b4c``); RunNotFound or AmbiguousRunId otherwise."""
        full = canonical_run_id(run_id)
        if full is not None:
            return full
        if len(run_id.strip()) < SHORTEST_PREFIX:
            raise LegatoError(
                f"no run with id {run_id!r}: a short run id needs at least {SHORTEST_PREFIX} characters"
            )
        found = await self.store.run_ids_starting_with(run_id, CANDIDATES_SHOWN + 1)
        if not found:
            raise RunNotFound(run_id)
        if len(found) > 1:
            raise AmbiguousRunId(run_id, found[:CANDIDATES_SHOWN], len(found) > CANDIDATES_SHOWN)
        return found[0]

    async def count_runs(
        self,
        status: RunStatus | str | None = None,
        workflow: str | None = None,
        before: float | None = None,
        *,
        where: Mapping[str, str | int | float | bool] | None = None,
        key: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """How many runs :meth:`runs` would list with no limit."""
        wanted = RunStatus(status) if status is not None else None
        values = {path: _search_text(value) for path, value in (where or {}).items()}
        return await self.store.count_runs(RunQuery(wanted, workflow, 0, before, values, key, since, until))

    async def runs(
        self,
        status: RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 50,
        before: float | None = None,
        *,
        where: Mapping[str, str | int | float | bool] | None = None,
        key: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Run]:
        """Runs, newest first. ``where`` asks for search attributes (the paths a
        workflow declares in ``search``) to have these values: ``{"customer.id": 42}``
        finds the number 42 and the string "42" alike. ``key`` is an idempotency
        key; ``since`` and ``until`` bound the creation time (epoch seconds).
        A malformed path raises ValueError."""
        wanted = RunStatus(status) if status is not None else None
        values = {path: _search_text(value) for path, value in (where or {}).items()}
        query = RunQuery(wanted, workflow, limit, before, values, key, since, until)
        return await self.store.list_runs(query)

    async def children(self, run_id: str) -> list[Run]:
        """The child runs ``run_id`` started (its child states), oldest first."""
        run = await self.get(run_id)
        return await self.store.children(run.id)

    async def history(self, run_id: str) -> list[HistoryEntry]:
        run = await self.get(run_id)
        return await self.store.history(run.id)

    async def wait(
        self,
        run_id: str,
        timeout: float = 30.0,
        statuses: frozenset[RunStatus] = TERMINAL_STATUSES,
        poll: float = 0.05,
        fallback: float = FALLBACK_POLL,
    ) -> Run:
        """Wait until the run reaches one of ``statuses``; TimeoutError otherwise.

        Woken by the store when the run's status changes (Postgres LISTEN/NOTIFY,
        see legato/results.py), reading again every ``fallback`` seconds in case
        a notification was lost; every ``poll`` seconds on a store that cannot
        tell other processes' changes.
        """
        run_id = await self.resolve_run_id(run_id)
        waiters = await self._waiters()
        with anyio.fail_after(timeout):
            if waiters is None:
                while True:
                    run = await self.get(run_id)
                    if run.status in statuses:
                        return run
                    await anyio.sleep(poll)
            with waiters.interest(run_id) as interest:
                while True:
                    run = await self.get(run_id)
                    if run.status in statuses:
                        return run
                    await interest.wait(fallback)

    async def result(self, run_id: str, timeout: float = 30.0) -> Run:
        """The run once it has finished (succeeded, failed, compensated or cancelled)."""
        return await self.wait(run_id, timeout)

    async def _waiters(self) -> RunWaiters | None:
        """The process's watch on run changes, when the store tells every process's."""
        store = self.store
        if not isinstance(store, RunWatch) or not store.watches_every_process:
            return None
        if self._run_waiters is None:
            self._run_waiters = RunWaiters(store)
        return self._run_waiters if await self._run_waiters.subscribe() else None

    async def close(self) -> None:
        """Stop listening for run changes (the store itself stays open)."""
        if self._run_waiters is not None:
            await self._run_waiters.close()

    # -- operator actions ---------------------------------------------------------

    async def signal(
        self,
        run_id: str,
        name: str,
        data: Mapping[str, JSON] | None = None,
        *,
        early: EarlySignal | str = EarlySignal.BUFFER,
    ) -> Run:
        """Send the signal ``name`` to a run.

        A run not yet at an approval waiting for it keeps the signal until it
        gets there (``early="buffer"``, the default) or refuses it
        (``early="refuse"``); see docs/concepts.md.
        """
        _check_storable(data, "the signal's data")
        _check_storable(name, "the signal's name")
        return await self._act(run_id, SignalReceived(name, dict(data or {}), self.actor, EarlySignal(early)))

    async def signal_with_start(
        self,
        workflow: str,
        key: str,
        name: str,
        data: Mapping[str, JSON] | None = None,
        input: Mapping[str, JSON] | None = None,
        *,
        priority: Priority | str | int | None = None,
    ) -> Run:
        """Start a run of ``workflow`` unless the key ``key`` has one, then
        deliver the signal ``name`` to it (kept until its approval is reached).

        Calling it again with the same key signals the same run again.
        """
        _check_storable(data, "the signal's data")
        run = await self.start(workflow, input, key=key, priority=priority)
        return await self.signal(run.id, name, data, early=EarlySignal.BUFFER)

    async def retry(
        self, run_id: str, state: str | None = None, data: Mapping[str, JSON] | None = None
    ) -> Run:
        _check_storable(data, "the data")
        return await self._act(run_id, RetryRequested(self.actor, state, dict(data) if data else None))

    async def skip(
        self, run_id: str, state: str | None = None, output: Mapping[str, JSON] | None = None
    ) -> Run:
        _check_storable(output, "the output")
        return await self._act(run_id, SkipRequested(self.actor, state, dict(output) if output else None))

    async def cancel(self, run_id: str, compensate: bool = True, reason: str = "") -> Run:
        _check_storable(reason, "the reason")
        return await self._act(run_id, CancelRequested(self.actor, compensate, reason))

    async def pause(self, run_id: str, reason: str = "") -> Run:
        """Pause a run: the steps running finish, no new one starts until :meth:`resume`.

        Its status turns ``paused`` (not ``suspended``, which a failed step
        causes); see docs/concepts.md. Refused for a finished or paused run.
        """
        return await self._act(run_id, PauseRequested(self.actor, reason))

    async def resume(self, run_id: str) -> Run:
        """Resume a paused run: the steps held back meanwhile are dispatched."""
        return await self._act(run_id, ResumeRequested(self.actor))

    # -- completion tokens ----------------------------------------------------------

    async def complete(self, token: str, output: Mapping[str, JSON] | None = None) -> Run:
        """Complete the step that handed out ``token`` (``CompleteLater``), with
        ``output`` as its result; the run goes on from there.

        A token is single-use: a second completion (or one after the step's
        timeout) raises :class:`~legato.errors.CompletionTokenUsed`; an unknown
        token :class:`~legato.errors.UnknownCompletionToken`.
        """
        _check_storable(output, "the output")
        return await settle_token(
            self.engine, self.store, token, self.actor, output=dict(output or {}) or None
        )

    async def fail(
        self, token: str, error: str, *, type: str = EXTERNAL_ERROR, non_retryable: bool = False
    ) -> Run:
        """Fail the step that handed out ``token``: the attempt failed with
        ``type``/``error``, and its retry policy decides (a retry runs the handler
        again, which hands out a new token). ``non_retryable`` skips the retries left."""
        if not error:
            raise LegatoError("say why the step failed: the error message is empty")
        info = ErrorInfo.of(type or EXTERNAL_ERROR, error)
        return await settle_token(
            self.engine, self.store, token, self.actor, error=info, non_retryable=non_retryable
        )

    async def _act(self, run_id: str, event: Event) -> Run:
        outcome = await self.engine.apply(await self.resolve_run_id(run_id), event)
        if isinstance(outcome, Rejection):
            raise OperationRefused(outcome.reason)
        return outcome.run

    async def send_signal_message(
        self,
        run_id: str,
        name: str,
        data: Mapping[str, JSON] | None = None,
        *,
        early: EarlySignal | str = EarlySignal.BUFFER,
    ) -> None:
        """Send a signal as an AMQP message instead of applying it directly."""
        if self.broker is None:
            raise LegatoError("sending a signal message needs a broker")
        message = {"run_id": run_id, "name": name, "data": dict(data or {}), "actor": self.actor}
        body = orjson.dumps({**message, "early": EarlySignal(early).value})
        await self.broker.publish_event(SIGNAL_ROUTING_KEY, body)

    async def publish_event(
        self,
        name: str,
        body: Mapping[str, JSON],
        *,
        message_id: str | None = None,
        priority: Priority | str | None = None,
    ) -> None:
        if self.broker is None:
            raise LegatoError("publishing an event needs a broker")
        headers = (
            {"x-legato-priority": Priority.parse(priority).name.lower()} if priority is not None else None
        )
        await self.broker.publish_event(
            name, orjson.dumps(dict(body)), message_id=message_id, headers=headers
        )

    # -- dead letters ---------------------------------------------------------------

    async def dead_letters(
        self, workflow: str | None = None, status: str | None = "open", limit: int = 100
    ) -> list[DeadLetterRecord]:
        return await self.store.list_dead_letters(workflow, status, limit)

    async def count_dead_letters(
        self, workflow: str | None = None, status: str | None = "open", older_than: float | None = None
    ) -> int:
        """How many dead letters match: beyond a listing's limit, or what a purge would delete."""
        return await self.store.count_dead_letters(workflow, status, older_than)

    async def dead_letter(self, dead_letter_id: int) -> DeadLetterRecord:
        record = await self.store.get_dead_letter(dead_letter_id)
        if record is None:
            raise LegatoError(f"no dead letter with id {dead_letter_id}")
        return record

    async def dead_letter_groups(
        self, by: str, workflow: str | None = None, status: str | None = "open"
    ) -> list[DeadLetterGroup]:
        if by not in ("error", "state", "workflow"):
            raise LegatoError(f"group dead letters by error, state or workflow, not {by!r}")
        return await self.store.group_dead_letters(by, workflow, status)

    async def replay(self, dead_letter_id: int) -> Run | None:
        """Resume the run from its failed step with a fresh attempt budget.

        Exactly once: the dead letter is marked replayed in the same
        transaction, so a second replay (even a concurrent one) is refused.
        A poison message is published again to its exchange instead.
        """
        record = await self.dead_letter(dead_letter_id)
        if record.status != DeadLetterStatus.OPEN:
            raise OperationRefused(_closed(record))
        if record.source == "message":
            await self._republish(record)
            return None
        assert record.run_id is not None
        event = RetryRequested(self.actor, record.state, None, dead_letter_id)
        outcome: Decision | Rejection = await self.engine.apply(
            record.run_id, event, guard=ResolveDeadLetter(dead_letter_id, self.actor)
        )
        if isinstance(outcome, Rejection):
            # Refused because a concurrent replay won (the run is running now, or
            # the dead letter is closed)? Then say so, not what the run looks like.
            now = await self.dead_letter(dead_letter_id)
            if now.status != DeadLetterStatus.OPEN:
                raise OperationRefused(_closed(now))
            raise OperationRefused(f"dead letter {dead_letter_id}: {outcome.reason}")
        return outcome.run

    async def resolve(self, dead_letter_id: int) -> DeadLetterRecord:
        """Close a dead letter without a replay, for one whose run cannot (or need not)
        be resumed: compensated, cancelled, or dealt with by hand. The run is left as
        it is; the dead letter records who resolved it."""
        resolved = await self.store.resolve_dead_letter(
            dead_letter_id, self.actor, self.clock.now(), DeadLetterStatus.RESOLVED
        )
        record = await self.dead_letter(dead_letter_id)
        if not resolved:
            raise OperationRefused(_closed(record))
        return record

    async def _republish(self, record: DeadLetterRecord) -> None:
        """Publish a dead-lettered message again to where it came from: a task
        message to its task queue, an event to its routing key, headers kept.

        Marked replayed first (so two operators cannot both publish it), and
        reopened if the publish fails, so that it is never lost.
        """
        if self.broker is None:
            raise LegatoError("replaying a dead-lettered message needs the broker")
        message = record.message or {}
        if not await self.store.resolve_dead_letter(record.id, self.actor, self.clock.now()):
            raise OperationRefused(_closed(await self.dead_letter(record.id)))
        try:
            await self.broker.republish(
                str(message.get("queue", "")),
                str(message.get("routing_key", "")),
                record.body if record.body is not None else b"",
                message.get("message_id"),
                dict(message.get("headers") or {}),
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.store.reopen_dead_letter(record.id)
            raise

    async def replay_all(self, workflow: str | None = None) -> ReplayReport:
        report = ReplayReport([], {})
        for record in await self.store.list_dead_letters(workflow, "open", limit=100_000):
            try:
                await self.replay(record.id)
            except LegatoError as exc:
                report.refused[record.id] = str(exc)
            else:
                report.replayed.append(record.id)
        return report

    async def purge_dead_letters(self, older_than: float | None = None) -> tuple[int, int]:
        """Delete dead letters older than ``older_than`` (all when None): the
        records, and the copies in RabbitMQ's dead-letter queue.

        Returns (records, queued messages) purged. Nothing else ever deletes them.
        """
        records = await self.store.purge_dead_letters(older_than)
        queued = await self.broker.purge_dead_letters(older_than) if self.broker is not None else 0
        return records, queued


def _search_text(value: str | int | float | bool) -> str:
    """A value to look for, as search attributes keep values (machine/search.py)."""
    text = search_value(value)
    if text is None:
        raise ValueError(f"a search value must be a string, number or boolean, got {value!r}")
    return text
