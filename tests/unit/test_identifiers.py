"""Names and URLs from configuration: checked at load, with a clear error, never run as SQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from legato.broker.base import Topology
from legato.config import load_settings
from legato.errors import ConfigurationError
from legato.identifiers import quote_ident
from legato.store.postgres import PostgresStore

INJECTION = 'a,"; CREATE TABLE public.x(i int); COMMIT; --"'


@pytest.mark.parametrize(
    "schema",
    [INJECTION, "Legato", "1legato", "le gato", "le-gato", "le.gato", 'le"gato', "x" * 57, "lé"],
)
def test_a_malformed_schema_name_is_refused_at_load(schema: str) -> None:
    with pytest.raises(
        ConfigurationError, match=re.escape(f"database schema {schema!r} is not a valid name")
    ):
        load_settings(env={"LEGATO_DATABASE_SCHEMA": schema, "LEGATO_CONFIG": "/dev/null"})


def test_a_malformed_schema_name_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "legato.toml"
    config.write_text('[database]\nschema = "x; DROP SCHEMA public"\n')
    with pytest.raises(ConfigurationError, match="is not a valid name"):
        load_settings(config, env={})


@pytest.mark.parametrize("schema", ["legato", "t_0123abcd", "_x", "x" * 56])
def test_good_schema_names_pass(schema: str) -> None:
    settings = load_settings(env={"LEGATO_DATABASE_SCHEMA": schema, "LEGATO_CONFIG": "/dev/null"})
    assert settings.database_schema == schema


def test_the_store_refuses_a_malformed_schema_too() -> None:
    """Settings are not the only way in: a store built in code checks its schema as well."""
    with pytest.raises(ConfigurationError, match="is not a valid name"):
        PostgresStore("postgresql://127.0.0.1/test", INJECTION)


@pytest.mark.parametrize("namespace", ["a b", "a/b", "a#b", ".legato", "-x", "x" * 201, "a\x00b", "a*"])
def test_a_malformed_namespace_is_refused(namespace: str) -> None:
    with pytest.raises(ConfigurationError, match="is not a valid name"):
        load_settings(env={"LEGATO_NAMESPACE": namespace, "LEGATO_CONFIG": "/dev/null"})
    with pytest.raises(ConfigurationError, match="is not a valid name"):
        Topology(namespace)


def test_empty_names_are_refused_in_code() -> None:
    """(An empty variable is unset, so settings fall back to the default.)"""
    with pytest.raises(ConfigurationError, match="is not a valid name"):
        Topology("")
    with pytest.raises(ConfigurationError, match="is not a valid name"):
        PostgresStore("postgresql://127.0.0.1/test", "")


@pytest.mark.parametrize("namespace", ["legato", "legato_t_0123", "prod.eu-1", "App2"])
def test_good_namespaces_pass(namespace: str) -> None:
    assert Topology(namespace).events_exchange == f"{namespace}.events"


def test_a_quoted_identifier_cannot_end_early() -> None:
    assert quote_ident('a"; DROP') == '"a""; DROP"'


@pytest.mark.parametrize(
    ("variable", "url", "message"),
    [
        ("LEGATO_DATABASE_URL", "mysql://db/app", "the scheme 'mysql' is not supported"),
        ("LEGATO_DATABASE_URL", "db.example.com/app", "the scheme 'none' is not supported"),
        ("LEGATO_DATABASE_URL", "postgresql://db:abc/app", "the port is not a number"),
        ("LEGATO_DATABASE_URL", "postgresql://db:99999/app", "the port is not a number"),
        ("LEGATO_DATABASE_URL", "postgresql://h1:5432,h2:x/app", "the port is not a number"),
        ("LEGATO_DATABASE_URL", "postgresql://[::1/app", "Invalid IPv6 URL"),
        ("LEGATO_DATABASE_URL", "postgresql://d b/app", "'d b' is not a host name"),
        ("LEGATO_BROKER_URL", "kafka://mq", "the scheme 'kafka' is not supported"),
        ("LEGATO_BROKER_URL", "amqp://mq:port/", "the port is not a number"),
        ("LEGATO_BROKER_URL", "amqp://[mq/", "Invalid IPv6 URL"),
    ],
)
def test_an_unusable_url_is_one_clear_line(variable: str, url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as caught:
        load_settings(env={variable: url, "LEGATO_CONFIG": "/dev/null"})
    assert str(caught.value).startswith(f"{variable} ")
    assert "\n" not in str(caught.value)


def test_an_unusable_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(
            env={
                "LEGATO_DATABASE_URL": "postgresql://u:hunter2@db:x/app?password=hunter2",
                "LEGATO_CONFIG": "/dev/null",
            }
        )
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("LEGATO_DATABASE_URL", "postgresql://u:p@db:5432/app?sslmode=require"),
        ("LEGATO_DATABASE_URL", "postgres://h1:5432,h2:5433/app"),
        ("LEGATO_DATABASE_URL", "postgresql:///app?host=/var/run/postgresql"),
        ("LEGATO_DATABASE_URL", "postgresql://[::1]:5432/app"),
        ("LEGATO_DATABASE_URL", "sqlite:///tmp/legato.db"),
        ("LEGATO_BROKER_URL", "amqps://u:p@mq.example.com:5671/vhost?heartbeat=30"),
        ("LEGATO_BROKER_URL", "memory://"),
    ],
)
def test_usable_urls_pass(variable: str, url: str) -> None:
    load_settings(env={variable: url, "LEGATO_CONFIG": "/dev/null"})
