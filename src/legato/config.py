"""Configuration: a few typed dataclasses, read from a TOML file and the environment.

Precedence: command-line options > environment (``LEGATO_*``) > TOML file >
defaults. With neither a database nor a broker URL, legato runs on the
embedded default: SQLite in ``.legato/`` and an in-process broker.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from legato.errors import ConfigurationError
from legato.identifiers import check_namespace, check_schema
from legato.urls import check_broker_url, check_database_url
from legato.worker.runtime import WorkerSettings

DEFAULT_CONFIG_FILE = "legato.toml"
DEFAULT_EMBEDDED_PATH = ".legato/legato.db"


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int | None = None
    """Port of the worker's /metrics, /healthz and /readyz; off when unset."""
    token: str | None = field(default=None, repr=False)
    """Required for every call when binding beyond loopback (dashboard actions always)."""
    tokens: str | None = field(default=None, repr=False)
    """Named tokens, one per person: ``alice:TOKEN,bob:TOKEN``; actions record ``dashboard:alice``."""
    tokens_file: str | None = None
    """A file of named tokens, one ``NAME:TOKEN`` a line (``#`` starts a comment)."""
    user_header: str | None = None
    """A header naming the user, set by a trusted authenticating proxy (e.g. ``X-Forwarded-User``);
    read only when set here, and only from a caller that sent a valid token."""


@dataclass(frozen=True)
class IngressSettings:
    """Limits of the HTTP ingress on the worker's HTTP server (docs/events.md)."""

    max_body: int = 1024 * 1024
    """Largest request body accepted, in bytes; a larger one gets 413."""
    max_wait: float = 60.0
    """Longest ``?wait=SECONDS`` a caller may ask for when starting a run."""


@dataclass(frozen=True)
class WebhookSettings:
    """One ``[webhooks.NAME]`` table: a provider's signed deliveries at ``POST /webhooks/NAME``."""

    provider: str
    """``github`` (X-Hub-Signature-256) or ``stripe`` (Stripe-Signature, timestamped)."""
    secret: str = field(repr=False)
    """The shared secret; from the table or ``LEGATO_WEBHOOK_<NAME>_SECRET``. Never logged."""
    event: str = ""
    """Template of the event name, e.g. ``github.{header.X-GitHub-Event}``; the provider's default when empty."""
    key: str = ""
    """Template of the idempotency key, e.g. ``{header.X-GitHub-Delivery}``; the provider's default when empty."""
    tolerance: float = 300.0
    """Seconds a timestamped signature (Stripe) stays valid, either side of now."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    database_schema: str = "legato"
    pool_size: int = 10
    """Connections per process in the Postgres pool."""
    broker_url: str | None = None
    namespace: str = "legato"
    queue_type: str = "classic"
    embedded_path: str = DEFAULT_EMBEDDED_PATH
    app: str | None = None
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    limits: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """``[limits.NAME]`` tables: fields of declared limits to override (rate, burst, ...)."""
    ingress: IngressSettings = field(default_factory=IngressSettings)
    webhooks: Mapping[str, WebhookSettings] = field(default_factory=dict)
    """``[webhooks.NAME]`` tables, by NAME."""

    @property
    def embedded_store(self) -> bool:
        return self.database_url is None or self.database_url.startswith("sqlite")

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None or self.broker_url.startswith("memory")

    def sqlite_path(self) -> str:
        url = self.database_url
        if url and url.startswith("sqlite:///"):
            return url.removeprefix("sqlite:///")
        return self.embedded_path


# Top-level keys of the file, and the variable of each.
_TOP = {
    "app": "LEGATO_APP",
}
# The keys of each [section] of the file, and the variable of each.
_SECTIONS: dict[str, dict[str, str]] = {
    "database": {
        "url": "LEGATO_DATABASE_URL",
        "schema": "LEGATO_DATABASE_SCHEMA",
        "pool_size": "LEGATO_POOL_SIZE",
        "embedded_path": "LEGATO_EMBEDDED_PATH",
    },
    "broker": {
        "url": "LEGATO_BROKER_URL",
        "namespace": "LEGATO_NAMESPACE",
        "queue_type": "LEGATO_QUEUE_TYPE",
    },
    "worker": {f.name: f"LEGATO_{f.name.upper()}" for f in fields(WorkerSettings)},
    "http": {
        "host": "LEGATO_HTTP_HOST",
        "port": "LEGATO_HTTP_PORT",
        "token": "LEGATO_HTTP_TOKEN",
        "tokens": "LEGATO_HTTP_TOKENS",
        "tokens_file": "LEGATO_HTTP_TOKENS_FILE",
        "user_header": "LEGATO_HTTP_USER_HEADER",
    },
    "ingress": {f.name: f"LEGATO_INGRESS_{f.name.upper()}" for f in fields(IngressSettings)},
}
WEBHOOK_KEYS = tuple(f.name for f in fields(WebhookSettings))


def webhook_secret_variable(name: str) -> str:
    """The environment variable of a webhook's secret: ``LEGATO_WEBHOOK_<NAME>_SECRET``."""
    return "LEGATO_WEBHOOK_" + "".join(c if c.isalnum() else "_" for c in name.upper()) + "_SECRET"


# The Settings field each [database] and [broker] key sets ([worker] and [http] have dataclasses of their own).
_SETTINGS_FIELD = {
    ("database", "url"): "database_url",
    ("database", "schema"): "database_schema",
    ("database", "pool_size"): "pool_size",
    ("database", "embedded_path"): "embedded_path",
    ("broker", "url"): "broker_url",
    ("broker", "namespace"): "namespace",
    ("broker", "queue_type"): "queue_type",
}


def load_settings(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read the TOML file (``config_file``, ``$LEGATO_CONFIG`` or ./legato.toml) and the environment."""
    env = os.environ if env is None else env
    raw, source = _read_config(config_file, env)
    values = _Values()
    values.read_file(raw, source)
    values.read_env(env)
    settings = values.settings(source)
    _check_ranges(settings)
    return settings


def _read_config(config_file: str | Path | None, env: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """The file's tables, and the name its errors give it (``<defaults>`` without a file)."""
    path = config_file or env.get("LEGATO_CONFIG")
    if path is not None:
        return _read_toml(Path(path)), str(path)
    if Path(DEFAULT_CONFIG_FILE).is_file():
        return _read_toml(Path(DEFAULT_CONFIG_FILE)), DEFAULT_CONFIG_FILE
    return {}, "<defaults>"


@dataclass
class _Values:
    """Raw values from the file, then the environment over them, by the dataclass they go to."""

    top: dict[str, Any] = field(default_factory=dict)
    worker: dict[str, Any] = field(default_factory=dict)
    http: dict[str, Any] = field(default_factory=dict)
    ingress: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def read_file(self, raw: Mapping[str, Any], source: str) -> None:
        for key, value in raw.items():
            if key in _TOP:
                self.top[key] = value
            elif key == "limits" and isinstance(value, dict):
                self._read_limits(value, source)
            elif key == "webhooks" and isinstance(value, dict):
                self._read_webhooks(value, source)
            elif key in _SECTIONS and isinstance(value, dict):
                self._read_section(key, value, source)
            else:
                known = ", ".join([*_TOP, *(f"[{s}]" for s in _SECTIONS), "[limits.NAME]", "[webhooks.NAME]"])
                raise ConfigurationError(f"{source}: unknown setting {key!r}; known: {known}")

    def _read_limits(self, tables: Mapping[str, Any], source: str) -> None:
        for name, table in tables.items():
            if not isinstance(table, dict):
                raise ConfigurationError(
                    f"{source}: [limits.{name}] must be a table of fields, e.g. rate = 50"
                )
            self.limits[name] = table

    def _read_webhooks(self, tables: Mapping[str, Any], source: str) -> None:
        for name, table in tables.items():
            if not isinstance(table, dict):
                raise ConfigurationError(
                    f"{source}: [webhooks.{name}] must be a table, e.g. provider = 'github'"
                )
            unknown = sorted(table.keys() - set(WEBHOOK_KEYS))
            if unknown:
                raise ConfigurationError(
                    f"{source}: unknown setting [webhooks.{name}] {unknown[0]}; known: {', '.join(WEBHOOK_KEYS)}"
                )
            self.webhooks[name] = dict(table)

    def _read_section(self, section: str, table: Mapping[str, Any], source: str) -> None:
        known = _SECTIONS[section]
        for key, value in table.items():
            if key not in known:
                raise ConfigurationError(
                    f"{source}: unknown setting [{section}] {key}; known: {', '.join(known)}"
                )
            self._place(section, key, value)

    def read_env(self, env: Mapping[str, str]) -> None:
        for key, var in _TOP.items():
            if var in env:
                self.top[key] = env[var]
        for section, names in _SECTIONS.items():
            for key, var in names.items():
                # An empty variable is unset, so the file's value stands.
                if var in env and env[var] != "":
                    self._place(section, key, env[var])
        for name, table in self.webhooks.items():
            secret = env.get(webhook_secret_variable(name), "")
            if secret:
                table["secret"] = secret

    def _place(self, section: str, key: str, value: Any) -> None:
        if section == "worker":
            self.worker[key] = value
        elif section == "http":
            self.http[key] = value
        elif section == "ingress":
            self.ingress[key] = value
        else:
            self.top[_SETTINGS_FIELD[(section, key)]] = value

    def settings(self, source: str) -> Settings:
        """The typed settings; values from the environment are converted to their fields' types."""
        try:
            worker = _typed(WorkerSettings, self.worker, "worker")
            http = _typed(HttpSettings, self.http, "http")
            ingress = _typed(IngressSettings, self.ingress, "ingress")
            webhooks = {name: _webhook(name, table) for name, table in self.webhooks.items()}
            top = {
                name: _convert(value, _field_type(Settings, name), name) for name, value in self.top.items()
            }
            return replace(
                Settings(),
                worker=worker,
                http=http,
                ingress=ingress,
                webhooks=webhooks,
                limits=self.limits,
                **top,
            )
        except TypeError as exc:
            raise ConfigurationError(f"{source}: {exc}") from exc


def _webhook(name: str, table: Mapping[str, Any]) -> WebhookSettings:
    where = f"[webhooks.{name}]"
    for required in ("provider", "secret"):
        if not table.get(required):
            hint = f" (or {webhook_secret_variable(name)})" if required == "secret" else ""
            raise ConfigurationError(f"{where} needs {required}{hint}")
    values = {k: _convert(v, str, f"{where} {k}") for k, v in table.items() if k != "tolerance"}
    if "tolerance" in table:
        values["tolerance"] = _convert(table["tolerance"], float, f"{where} tolerance")
    return WebhookSettings(**values)


def _check_ranges(settings: Settings) -> None:
    check_schema(settings.database_schema)
    check_namespace(settings.namespace)
    if settings.database_url is not None:
        check_database_url(settings.database_url)
    if settings.broker_url is not None:
        check_broker_url(settings.broker_url)
    if settings.queue_type not in ("classic", "quorum"):
        raise ConfigurationError(f"queue_type must be 'classic' or 'quorum', got {settings.queue_type!r}")
    if settings.pool_size < 1:
        raise ConfigurationError(f"pool_size must be >= 1, got {settings.pool_size}")
    if settings.worker.concurrency < 1:
        raise ConfigurationError(f"worker concurrency must be >= 1, got {settings.worker.concurrency}")
    if settings.worker.waiting_room is not None and settings.worker.waiting_room < 0:
        raise ConfigurationError(f"worker waiting_room must be >= 0, got {settings.worker.waiting_room}")
    for name in ("retention_days", "dedupe_days"):
        value = getattr(settings.worker, name)
        if value is not None and value <= 0:
            raise ConfigurationError(f"worker {name} must be > 0 (unset keeps forever), got {value}")
    if settings.worker.retention_interval <= 0 or settings.worker.retention_batch < 1:
        raise ConfigurationError("worker retention_interval must be > 0 and retention_batch >= 1")
    if settings.ingress.max_body < 1:
        raise ConfigurationError(f"ingress max_body must be >= 1, got {settings.ingress.max_body}")
    if settings.ingress.max_wait < 0:
        raise ConfigurationError(f"ingress max_wait must be >= 0, got {settings.ingress.max_wait}")
    if settings.worker.slot_poll_interval <= 0:
        raise ConfigurationError(
            f"worker slot_poll_interval must be > 0, got {settings.worker.slot_poll_interval}"
        )


def _field_type(kind: type[Any], name: str) -> type[Any]:
    current = getattr(kind(), name)
    return type(current) if current is not None else str


def _typed(kind: type[Any], raw: dict[str, Any], section: str) -> Any:
    """Build a settings dataclass, converting environment strings to field types."""
    converted: dict[str, Any] = {}
    defaults = kind()
    for f in fields(kind):
        if f.name not in raw:
            continue
        value = raw[f.name]
        current = getattr(defaults, f.name)
        target = type(current) if current is not None else _optional_type(str(f.type))
        converted[f.name] = _convert(value, target, f"[{section}] {f.name}")
    return kind(**converted)


def _optional_type(annotation: str) -> type[Any]:
    """The type of a field that defaults to None: ``int | None`` -> int."""
    names = {"int": int, "float": float, "bool": bool}
    return next((names[part.strip()] for part in annotation.split("|") if part.strip() in names), str)


def _convert(value: Any, target: type[Any], name: str) -> Any:
    if isinstance(value, target) and not (target is int and isinstance(value, bool)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if target is bool:
                if text.lower() in ("1", "true", "yes", "on"):
                    return True
                if text.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if target is int:
                return int(text)
            if target is float:
                return float(text)
            return text
        except ValueError:
            pass
    if target is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    kind = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}.get(
        target.__name__, target.__name__
    )
    raise ConfigurationError(f"{name} must be {kind}, got {value!r}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from exc
