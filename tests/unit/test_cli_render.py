"""The terminal shows data, never obeys it: every command that prints data
prints markup literally and control sequences escaped (embedded store)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from legato.broker.memory import MemoryBroker
from legato.cli.main import cli
from legato.client import Client
from legato.machine.run import RunStatus
from legato.printable import printable
from legato.store.sqlite import SqliteStore
from legato.worker.runtime import WorkerSettings
from tests.apps.hostile import EVIL, app
from tests.integration.harness import eventually, running

APP = "tests.apps.hostile:app"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")


@dataclass
class Scene:
    failed: str
    waiting: str
    step_letter: int
    poison_letter: int


async def _stage(path: Path) -> Scene:
    store = SqliteStore(path)
    broker = MemoryBroker()
    await store.open()
    await store.migrate()
    await broker.connect()
    try:
        client = Client(store, broker, app, actor="test")
        settings = WorkerSettings(concurrency=2, timer_poll_interval=0.05)
        async with running(app, store, broker, settings):
            failed = await client.start("hostile", {"note": EVIL})
            waiting = await client.start("waiting", {"note": EVIL})
            await broker.publish_event(f"evt{EVIL}", EVIL.encode() + b"\x00\xff", message_id=EVIL)

            async def settled() -> bool:
                run = await store.load_run(failed.id)
                letters = await store.list_dead_letters()
                return run is not None and run.status is RunStatus.FAILED and len(letters) == 2

            await eventually(settled, timeout=30)
        letters = {letter.source: letter.id for letter in await store.list_dead_letters()}
    finally:
        await broker.close()
        await store.close()
    return Scene(failed.id, waiting.id, letters["step"], letters["message"])


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Scene]:
    path = tmp_path_factory.mktemp("render") / "legato.db"
    return path, asyncio.run(_stage(path))


@pytest.fixture
def runner(scene: tuple[Path, Scene], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("LEGATO_DATABASE_URL", "LEGATO_BROKER_URL", "LEGATO_APP", "LEGATO_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEGATO_EMBEDDED_PATH", str(scene[0]))
    monkeypatch.setenv("COLUMNS", "1000")
    return CliRunner()


def invoke(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, ["--app", APP, *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    for raw in RAW_CONTROLS:
        assert raw not in result.output, (args, result.output)
    return result.stdout if code == 0 else result.stderr  # the embedded store is named on stderr


def test_printable_escapes_controls_and_keeps_text() -> None:
    assert printable("a\x1b[31mb\x07\x9b\u202e\tc\nd") == "a\\x1b[31mb\\x07\\x9b\\u202e\tc\nd"
    assert printable("[/] [red]ok[/red] caf\u00e9") == "[/] [red]ok[/red] caf\u00e9"


def test_show_prints_an_error_with_markup_literally(runner: CliRunner, scene: tuple[Path, Scene]) -> None:
    out = invoke(runner, "show", scene[1].failed)
    assert "[/] [red]x[/red] [link=http://evil.example]click[/link]" in out
    assert "\\x1b[2J" in out
    assert "\\x1b]8;;http://evil.example\\x07osc" in out


@pytest.mark.parametrize(
    "args",
    [
        ("runs",),
        ("runs", "--json"),
        ("show", "{failed}", "--json"),
        ("dlq", "list"),
        ("dlq", "list", "--group-by", "error"),
        ("dlq", "list", "--json"),
        ("dlq", "show", "{step_letter}"),
        ("dlq", "show", "{poison_letter}"),
        ("dlq", "show", "{poison_letter}", "--json"),
    ],
)
def test_every_listing_prints_data_without_obeying_it(
    runner: CliRunner, scene: tuple[Path, Scene], args: tuple[str, ...]
) -> None:
    values = {k: str(v) for k, v in vars(scene[1]).items()}
    out = invoke(runner, *(a.format(**values) for a in args))
    if "--json" in args:
        orjson.loads(out)  # escaped as JSON escapes, still JSON
    if args[:2] == ("dlq", "show"):
        assert "[/] [red]x[/red]" in out


def test_an_action_and_its_refusal_print_data_literally(runner: CliRunner, scene: tuple[Path, Scene]) -> None:
    refused = invoke(runner, "signal", scene[1].waiting, f"go{EVIL}", "--refuse-early", code=1)
    assert "Error:" in refused
    assert "[/] [red]x[/red]" in refused
    cancelled = invoke(runner, "cancel", scene[1].waiting, "--reason", EVIL)
    assert f"run {scene[1].waiting}: cancelled" in cancelled
    history = invoke(runner, "show", scene[1].waiting)
    assert "\\x1b[2J" in history


def test_schedules_print_their_names_literally(runner: CliRunner) -> None:
    name = f"nightly{EVIL}"
    orjson.loads(invoke(runner, "schedule", "create", name, "--workflow", "waiting", "--every", "1h"))
    listed = invoke(runner, "schedule", "list")
    assert "nightly[/] [red]x[/red]" in listed
    assert "\\x1b[2J" in listed
    invoke(runner, "schedule", "delete", name)
