"""Connecting your own code to legato: ``async with legato.connect() as client``.

A web app, a script or a test builds its :class:`~legato.client.Client` here,
from the same settings a worker reads (``LEGATO_DATABASE_URL``,
``LEGATO_BROKER_URL``, ``legato.toml``, ...) or from explicit URLs, and gets
the store and broker connections closed when it is done. ``connect_sync`` is
the same for code that is not async: every call blocks until it is answered.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from legato.app import App, load_app
from legato.backends import make_broker, make_store
from legato.client import Client, ReplayReport
from legato.config import Settings, load_settings
from legato.machine.definition import Priority
from legato.machine.run import Run, RunStatus
from legato.machine.signals import EarlySignal
from legato.machine.values import JSON
from legato.store.base import DeadLetterRecord, HistoryEntry

T = TypeVar("T")


def resolve_settings(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    broker_url: str | None = None,
    app: App | str | None = None,
    config_file: str | Path | None = None,
    schema: str | None = None,
    namespace: str | None = None,
    pool_size: int | None = None,
) -> Settings:
    """``settings`` (or those of the environment and config file), with the given values over them."""
    found = settings if settings is not None else load_settings(config_file)
    overrides: dict[str, Any] = {
        "database_url": database_url,
        "broker_url": broker_url,
        "database_schema": schema,
        "namespace": namespace,
        "pool_size": pool_size,
        "app": app if isinstance(app, str) else None,
    }
    return replace(found, **{k: v for k, v in overrides.items() if v is not None})


@contextlib.asynccontextmanager
async def connect(
    database_url: str | None = None,
    broker_url: str | None = None,
    *,
    app: App | str | None = None,
    settings: Settings | None = None,
    config_file: str | Path | None = None,
    schema: str | None = None,
    namespace: str | None = None,
    pool_size: int | None = None,
    actor: str | None = None,
    broker: bool | None = None,
) -> AsyncIterator[Client]:
    """A connected :class:`Client`, closed on the way out.

    With no arguments it reads what a worker reads: the environment
    (``LEGATO_DATABASE_URL``, ``LEGATO_BROKER_URL``, ``LEGATO_APP``, ...) and
    ``legato.toml``; with neither URL, the embedded store in ``.legato/``,
    where a running ``legato worker`` picks up what this client starts.
    ``app`` (an :class:`App` or ``"module:attribute"``) is needed to start
    runs and act on them; reading runs and dead letters works without it.
    ``broker=None`` connects RabbitMQ when one is configured; without a
    broker, messages wait in the outbox for a worker's relay.
    """
    chosen = resolve_settings(
        settings,
        database_url=database_url,
        broker_url=broker_url,
        app=app,
        config_file=config_file,
        schema=schema,
        namespace=namespace,
        pool_size=pool_size,
    )
    definitions = app if isinstance(app, App) else (load_app(chosen.app) if chosen.app else None)
    store = make_store(chosen)
    use_broker = (not chosen.embedded_broker) if broker is None else broker
    message_broker = make_broker(chosen) if use_broker else None
    await store.open()
    try:
        if chosen.embedded_store:
            await store.migrate()
        if message_broker is not None:
            await message_broker.connect()
        client = Client(store, message_broker, definitions, actor=actor)
        try:
            yield client
        finally:
            await client.close()
    finally:
        if message_broker is not None:
            await message_broker.close()
        await store.close()


class SyncClient:
    """The :class:`Client` for code that is not async: each call blocks until done.

    The connections live on an event loop in a thread of their own, so the
    client may be used from any thread (a Django view, a Flask handler).
    """

    def __init__(self, client: Client, portal: BlockingPortal) -> None:
        self.client = client
        """The async client underneath: its other methods go through :meth:`call`."""
        self._portal = portal

    def call(self, method: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Any coroutine method of :attr:`client`, e.g. ``call(client.client.wait, run_id, 60)``."""
        return self._portal.call(method, *args)

    def start(
        self,
        workflow: str,
        input: Mapping[str, JSON] | None = None,
        *,
        key: str | None = None,
        priority: Priority | str | int | None = None,
    ) -> Run:
        return self._portal.call(lambda: self.client.start(workflow, input, key=key, priority=priority))

    def get(self, run_id: str) -> Run:
        return self._portal.call(self.client.get, run_id)

    def result(self, run_id: str, timeout: float = 30.0) -> Run:
        """The run once it has finished; TimeoutError if it has not within ``timeout`` seconds."""
        return self._portal.call(self.client.result, run_id, timeout)

    def runs(
        self, status: RunStatus | str | None = None, workflow: str | None = None, limit: int = 50
    ) -> list[Run]:
        return self._portal.call(self.client.runs, status, workflow, limit)

    def history(self, run_id: str) -> list[HistoryEntry]:
        return self._portal.call(self.client.history, run_id)

    def signal(
        self,
        run_id: str,
        name: str,
        data: Mapping[str, JSON] | None = None,
        *,
        early: EarlySignal | str = EarlySignal.BUFFER,
    ) -> Run:
        return self._portal.call(lambda: self.client.signal(run_id, name, data, early=early))

    def retry(self, run_id: str, state: str | None = None, data: Mapping[str, JSON] | None = None) -> Run:
        return self._portal.call(self.client.retry, run_id, state, data)

    def skip(self, run_id: str, state: str | None = None, output: Mapping[str, JSON] | None = None) -> Run:
        return self._portal.call(self.client.skip, run_id, state, output)

    def cancel(self, run_id: str, compensate: bool = True, reason: str = "") -> Run:
        return self._portal.call(self.client.cancel, run_id, compensate, reason)

    def publish_event(self, name: str, body: Mapping[str, JSON], *, message_id: str | None = None) -> None:
        self._portal.call(lambda: self.client.publish_event(name, body, message_id=message_id))

    def dead_letters(
        self, workflow: str | None = None, status: str | None = "open", limit: int = 100
    ) -> list[DeadLetterRecord]:
        return self._portal.call(self.client.dead_letters, workflow, status, limit)

    def replay(self, dead_letter_id: int) -> Run | None:
        return self._portal.call(self.client.replay, dead_letter_id)

    def replay_all(self, workflow: str | None = None) -> ReplayReport:
        return self._portal.call(self.client.replay_all, workflow)


@contextlib.contextmanager
def connect_sync(
    database_url: str | None = None,
    broker_url: str | None = None,
    *,
    app: App | str | None = None,
    settings: Settings | None = None,
    config_file: str | Path | None = None,
    schema: str | None = None,
    namespace: str | None = None,
    pool_size: int | None = None,
    actor: str | None = None,
    broker: bool | None = None,
) -> Iterator[SyncClient]:
    """:func:`connect` for code that is not async: ``with legato.connect_sync() as client``."""
    with start_blocking_portal() as portal:
        connection = connect(
            database_url,
            broker_url,
            app=app,
            settings=settings,
            config_file=config_file,
            schema=schema,
            namespace=namespace,
            pool_size=pool_size,
            actor=actor,
            broker=broker,
        )
        with portal.wrap_async_context_manager(connection) as client:
            yield SyncClient(client, portal)
