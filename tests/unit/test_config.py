"""Configuration from a TOML file and the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from legato.config import load_settings
from legato.errors import ConfigurationError


def test_defaults_are_the_embedded_engine() -> None:
    settings = load_settings(env={})
    assert settings.embedded_store
    assert settings.embedded_broker
    assert settings.sqlite_path() == ".legato/legato.db"


def test_the_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "legato.toml"
    config.write_text(
        'app = "shop:app"\n'
        '[database]\nurl = "postgresql://db/legato"\npool_size = 5\n'
        '[broker]\nurl = "amqp://mq/"\nqueue_type = "quorum"\n'
        "[worker]\nconcurrency = 8\ngrace = 12.5\n"
    )
    settings = load_settings(config, env={"LEGATO_CONCURRENCY": "32", "LEGATO_MIGRATE": "false"})
    assert settings.app == "shop:app"
    assert settings.database_url == "postgresql://db/legato"
    assert settings.pool_size == 5
    assert settings.queue_type == "quorum"
    assert settings.worker.concurrency == 32
    assert settings.worker.grace == 12.5
    assert settings.worker.migrate is False
    assert not settings.embedded_store


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[worker]\nconcurency = 3\n", {}, "unknown setting [worker] concurency"),
        ("colour = 1\n", {}, "unknown setting 'colour'"),
        ("[worker\n", {}, "is not valid TOML"),
        ("", {"LEGATO_CONCURRENCY": "lots"}, "concurrency must be an integer, got 'lots'"),
        ("", {"LEGATO_POOL_SIZE": "0"}, "pool_size must be >= 1"),
        ("", {"LEGATO_QUEUE_TYPE": "stream"}, "queue_type must be 'classic' or 'quorum'"),
        ('[worker]\ngrace = "soon"\n', {}, "grace must be a number"),
        ("", {"LEGATO_WAITING_ROOM": "-1"}, "waiting_room must be >= 0"),
        ("", {"LEGATO_PREFETCH": "some"}, "prefetch must be an integer, got 'some'"),
        ("[limits]\npayments = 5\n", {}, "[limits.payments] must be a table"),
        (
            "colour = 1\n",
            {},
            "unknown setting 'colour'; known: app, [database], [broker], [worker], [http], [ingress], [limits.NAME], [webhooks.NAME]",
        ),
        ("worker = 5\n", {}, "unknown setting 'worker'; known:"),
        ("limits = 5\n", {}, "unknown setting 'limits'; known:"),
        ("[http]\nhots = 1\n", {}, "unknown setting [http] hots; known: host, port, token"),
        ("app = 5\n", {}, "app must be a string, got 5"),
        ("", {"LEGATO_POOL_SIZE": "many"}, "pool_size must be an integer, got 'many'"),
        ("", {"LEGATO_MIGRATE": "maybe"}, "[worker] migrate must be true or false, got 'maybe'"),
        ("", {"LEGATO_HTTP_PORT": "web"}, "[http] port must be an integer, got 'web'"),
        ("[worker]\nconcurrency = 0\n", {}, "worker concurrency must be >= 1, got 0"),
        ("", {"LEGATO_SLOT_POLL_INTERVAL": "0"}, "worker slot_poll_interval must be > 0, got 0.0"),
        ("[worker]\nconcurrency = true\n", {}, "[worker] concurrency must be an integer, got True"),
    ],
)
def test_bad_settings_name_what_is_wrong(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    config = tmp_path / "legato.toml"
    config.write_text(text)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        load_settings(config, env=env)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})


def test_flow_control_settings_and_limit_overrides(tmp_path: Path) -> None:
    config = tmp_path / "legato.toml"
    config.write_text(
        "[worker]\nwaiting_room = 64\nslot_poll_interval = 0.5\n"
        '[limits.payments]\nrate = 80\nburst = 20\n[limits.psp]\nlimit = 4\nscope = "process"\n'
    )
    settings = load_settings(config, env={"LEGATO_PREFETCH": "8"})
    assert settings.worker.prefetch == 8  # optional integers are integers, not strings
    assert settings.worker.waiting_room == 64
    assert settings.worker.slot_poll_interval == 0.5
    assert settings.limits == {"payments": {"rate": 80, "burst": 20}, "psp": {"limit": 4, "scope": "process"}}
    assert load_settings(env={}).worker.waiting_room is None  # four times the prefetch


def test_the_example_config_is_valid_and_covers_every_worker_setting() -> None:
    from dataclasses import fields

    from legato.worker.runtime import WorkerSettings
    from tests.conftest import ROOT

    example = ROOT / "config" / "legato.example.toml"
    settings = load_settings(example, env={})
    assert settings.app == "shop:app"
    assert settings.queue_type == "classic"
    text = example.read_text()
    for f in fields(WorkerSettings):
        assert f"LEGATO_{f.name.upper()}" in text, f.name


def test_the_example_config_covers_every_http_ingress_and_webhook_setting() -> None:
    from dataclasses import fields

    from legato.config import HttpSettings, IngressSettings, WebhookSettings, webhook_secret_variable
    from tests.conftest import ROOT

    text = (ROOT / "config" / "legato.example.toml").read_text()
    for f in fields(HttpSettings):
        assert f"LEGATO_HTTP_{f.name.upper()}" in text, f.name
    for f in fields(IngressSettings):
        assert f"LEGATO_INGRESS_{f.name.upper()}" in text, f.name
    # The webhook tables are examples (commented out): each of their keys is shown.
    for f in fields(WebhookSettings):
        assert re.search(rf"^# {f.name} = ", text, re.MULTILINE), f.name
    assert webhook_secret_variable("github") in text


def test_every_section_reads_its_file_table_and_its_variables(tmp_path: Path) -> None:
    config = tmp_path / "legato.toml"
    config.write_text(
        '[database]\nurl = "postgresql://db/x"\nschema = "s"\nembedded_path = "e.db"\n'
        '[broker]\nnamespace = "n"\n'
        '[http]\nhost = "0.0.0.0"\nport = 9100\n'
        "[worker]\ngrace = 12\n"
    )
    env = {
        "LEGATO_APP": "mod:app",
        "LEGATO_DATABASE_URL": "",  # empty: the file's value stands
        "LEGATO_BROKER_URL": "amqp://mq/",
        "LEGATO_HTTP_TOKEN": "t",
        "LEGATO_EAGER": "off",
        "LEGATO_MIGRATE": "yes",
    }
    settings = load_settings(config, env=env)
    assert settings.app == "mod:app"
    assert (settings.database_url, settings.database_schema, settings.embedded_path) == (
        "postgresql://db/x",
        "s",
        "e.db",
    )
    assert (settings.broker_url, settings.namespace) == ("amqp://mq/", "n")
    assert (settings.http.host, settings.http.port, settings.http.token) == ("0.0.0.0", 9100, "t")
    assert settings.worker.grace == 12.0
    assert isinstance(settings.worker.grace, float)
    assert (settings.worker.eager, settings.worker.migrate) == (False, True)
    assert load_settings(config, env={"LEGATO_APP": ""}).app == ""  # the top level takes even ""


def test_the_file_is_found_by_variable_then_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = tmp_path / "named.toml"
    named.write_text('app = "named:app"\n')
    (tmp_path / "legato.toml").write_text('app = "local:app"\ncolour = 1\n')
    assert load_settings(env={"LEGATO_CONFIG": str(named)}).app == "named:app"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=re.escape("legato.toml: unknown setting 'colour'")):
        load_settings(env={})
    assert load_settings(named, env={"LEGATO_CONFIG": "elsewhere.toml"}).app == "named:app"
