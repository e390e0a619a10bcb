"""The import graph: the core imports nothing of the shell, the broker nothing of
the store or the machine.

Read from the source (no imports run), following every ``import`` of a legato
module, those under ``TYPE_CHECKING`` too: a type is a dependency as well.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

SHARED = {"legato.errors", "legato.priority", "legato.outbox"}
"""What the core and the shell share (the exception root, vocabularies); they import nothing of legato."""


def module_path(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def modules_under(package: str) -> list[str]:
    root = SRC.joinpath(*package.split("."))
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def imports_of(name: str) -> Iterator[str]:
    """The legato modules that module ``name`` imports, directly."""
    path = module_path(name)
    assert path is not None, name
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from legato.a import b`` imports the module legato.a.b when there is one.
            targets = [
                f"{base}.{alias.name}" if module_path(f"{base}.{alias.name}") else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target.startswith("legato.") and module_path(target) is not None:
                yield target


def reachable(start: str) -> dict[str, str]:
    """Every legato module ``start`` depends on, with the module that imports it."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        current = todo.pop()
        for target in imports_of(current):
            if target not in seen and target != start:
                seen[target] = current
                todo.append(target)
    return seen


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("module", modules_under("legato.broker"))
def test_the_broker_needs_nothing_of_the_store_or_the_machine(module: str) -> None:
    needed = reachable(module)
    wrong = {
        target: importer
        for target, importer in needed.items()
        if in_package(target, "legato.store") or in_package(target, "legato.machine")
    }
    assert not wrong, f"{module} depends on {wrong} (module: imported by)"


@pytest.mark.parametrize("module", modules_under("legato.machine"))
def test_the_machine_imports_nothing_of_the_shell(module: str) -> None:
    shell = {
        target
        for target in imports_of(module)
        if not in_package(target, "legato.machine") and target not in SHARED
    }
    assert not shell, f"{module} imports {shell}"


@pytest.mark.parametrize("module", sorted(SHARED))
def test_shared_vocabularies_import_nothing_of_legato(module: str) -> None:
    assert not list(imports_of(module))


def test_the_graph_is_read_right() -> None:
    """The checks above would pass on a reader that finds nothing; this one would not."""
    assert "legato.machine.definition" in set(imports_of("legato.machine.decide"))
    assert "legato.broker.base" in set(imports_of("legato.broker.rabbitmq"))
    assert "legato.store.base" in reachable("legato.worker.steps")
    assert "legato.priority" in reachable("legato.broker.rabbitmq")
