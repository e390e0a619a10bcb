"""`make demo` installs legato alone; `make test` (what CI runs) the dev and benchmark extras too."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def planned(target: str, venv: Path) -> str:
    """The commands make would run for ``target`` in a fresh clone (a venv that does not exist)."""
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), target, f"VENV={venv}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_the_demo_installs_legato_without_the_dev_and_benchmark_extras(tmp_path: Path) -> None:
    commands = planned("demo", tmp_path / "fresh")
    assert "pip install --quiet -e .\n" in commands
    assert "[dev" not in commands
    assert "bench" not in commands
    assert commands.rstrip().endswith("legato --log-level warning demo")


def test_install_and_therefore_test_install_the_dev_and_benchmark_extras(tmp_path: Path) -> None:
    commands = planned("install", tmp_path / "fresh")
    assert "pip install --quiet -e '.[dev,bench]'" in commands
    assert "pip install --quiet -e '.[dev,bench]'" in planned("unit", tmp_path / "fresh")
