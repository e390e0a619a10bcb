"""``import legato`` loads a name's module on first use, and the supervisor loads no worker."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

import legato

HEAVY = ("legato.app", "legato.client", "legato.worker.runtime", "legato.engine", "asyncpg", "aio_pika")


def _loaded_after(code: str) -> list[str]:
    """The heavy modules loaded by ``code``, in a fresh interpreter (this one has all of them)."""
    probe = f"import sys; {code}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(done.stdout))


def test_importing_the_package_loads_none_of_it() -> None:
    assert _loaded_after("import legato") == []


def test_the_supervisor_loads_neither_the_worker_nor_the_drivers() -> None:
    assert _loaded_after("import legato.worker.supervisor") == []


def test_a_name_loads_its_module_and_is_the_same_object() -> None:
    loaded = _loaded_after("from legato import Workflow, Task; import legato; legato.App")
    assert "legato.app" in loaded
    assert "legato.worker.runtime" not in loaded
    from legato.app import App
    from legato.machine.definition import Workflow

    assert legato.App is App
    assert legato.Workflow is Workflow


def test_every_exported_name_resolves_and_an_unknown_one_is_an_attribute_error() -> None:
    for name in legato.__all__:
        assert getattr(legato, name) is not None, name
    assert set(legato.__all__) <= set(dir(legato))
    with pytest.raises(AttributeError, match="has no attribute 'Nonesuch'"):
        legato.Nonesuch  # noqa: B018


def test_no_submodule_hides_an_exported_name() -> None:
    # Importing a submodule binds it on the package: one named like an exported
    # name (legato.connect was) would replace that name for everyone after it.
    probe = (
        "import importlib, pkgutil, legato; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(legato.__path__, 'legato.') "
        "if '.http.' not in m.name and not m.name.endswith('__main__')]; "
        "import types; "
        "print(sorted(n for n in legato.__all__ if isinstance(getattr(legato, n), types.ModuleType)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
