"""Shared plumbing of the CLI commands: settings, the event loop, connections."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import click
import orjson

from legato import filters
from legato.app import App, load_app
from legato.client import Client, default_actor
from legato.config import Settings
from legato.connection import connect
from legato.errors import ConfigurationError, LegatoError
from legato.printable import printable_json

T = TypeVar("T")


@dataclass
class CliState:
    settings: Settings


def run_async(function: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop where it exists (it does not on Windows)."""
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - platforms without uvloop
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(function())


def settings_of(ctx: click.Context) -> Settings:
    state = ctx.find_object(CliState)
    assert state is not None
    return state.settings


def with_app(settings: Settings, app: str | None) -> Settings:
    return replace(settings, app=app) if app else settings


def require_app(settings: Settings) -> App:
    if not settings.app:
        raise ConfigurationError("no app: pass --app module:attribute or set LEGATO_APP")
    if "." not in sys.path:
        sys.path.insert(0, ".")
    return load_app(settings.app)


@contextlib.asynccontextmanager
async def client(
    settings: Settings, *, app: bool = False, broker: bool | None = None
) -> AsyncIterator[Client]:
    """A connected client. ``broker=None``: connect the broker when it is RabbitMQ.

    The in-process broker of the embedded default is of no use to another
    process; the CLI then leaves its messages in the outbox, where a running
    worker's relay picks them up.
    """
    definitions = require_app(settings) if app else None
    if settings.embedded_store:
        say_embedded(settings)
    async with connect(
        settings=replace(settings, app=None),
        app=definitions,
        pool_size=2,
        actor=default_actor("cli"),
        broker=broker,
    ) as api:
        yield api


def say_embedded(settings: Settings) -> None:
    """Say which file a command reads when no database is configured: on stderr,
    so that a script parsing stdout is unaffected, and a person sees why a list
    is empty (the worker they started elsewhere uses another store)."""
    where = os.path.abspath(settings.sqlite_path())
    click.echo(f"no database configured: reading the embedded store at {where}", err=True)


def parse_json_object(text: str | None, option: str) -> dict[str, Any]:
    if text is None or text == "":
        return {}
    if text.startswith("@"):
        try:
            with open(text[1:], "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {text[1:]}: {exc}", param_hint=option) from exc
    else:
        raw = text.encode()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})", param_hint=option) from exc
    if not isinstance(value, dict):
        raise click.BadParameter(f"must be a JSON object, got {type(value).__name__}", param_hint=option)
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``12h``, ``7d``, ``2w`` -> seconds."""
    value = text.strip().lower()
    unit = 1
    if value and value[-1] in _UNITS:
        unit = _UNITS[value[-1]]
        value = value[:-1]
    try:
        seconds = float(value) * unit
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration; use e.g. 30m, 12h or 7d") from None
    if seconds < 0:
        raise click.BadParameter("a duration cannot be negative")
    return seconds


def parse_when(text: str, option: str, now: float) -> float:
    """An ISO time or a duration ago (legato/filters.py) -> epoch seconds."""
    try:
        return filters.parse_when(text, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def parse_where(values: Sequence[str]) -> dict[str, str]:
    """``--where path=value`` options -> {path: value}; a malformed one is a usage error."""
    try:
        return filters.parse_where(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--where") from None


def first_legato_error(group: BaseExceptionGroup[BaseException]) -> LegatoError | None:
    """The first of legato's own errors in a task group's exceptions, however nested."""
    for exc in group.exceptions:
        if isinstance(exc, LegatoError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = first_legato_error(exc)
            if found is not None:
                return found
    return None


def say_if_truncated(shown: int, total: int) -> None:
    """Tell the reader a list stops short (on stderr: JSON on stdout stays whole)."""
    if total > shown:
        click.echo(f"showing {shown:,} of {total:,}; --limit to see more", err=True)


def dump_json(value: Any) -> None:
    """Print ``value`` as JSON; every control character is escaped (``\\u009b``),
    as the terminal shows data, never obeys it (orjson escapes C0 only)."""
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    click.echo(printable_json(text))
