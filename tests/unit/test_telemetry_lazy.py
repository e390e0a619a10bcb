"""What a process does not turn on, it does not even import (telemetry/setup.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from legato.errors import ConfigurationError
from legato.telemetry.setup import Telemetry, tracing_named
from legato.telemetry.tracing import exporters_from_env


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": " none , "}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none,otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "bogus"}, True),  # named: the SDK side refuses it
    ],
)
def test_tracing_is_named_by_the_otel_variables(env: dict[str, str], named: bool) -> None:
    assert tracing_named(env) is named
    if env.get("OTEL_TRACES_EXPORTER") != "bogus":
        # The cheap check and the SDK's reading agree on whether there is any exporter.
        assert bool(exporters_from_env(env)) is named


def test_an_unknown_exporter_is_still_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown exporter 'bogus'"):
        Telemetry.configure(metrics=False, env={"OTEL_TRACES_EXPORTER": "bogus"})


def test_what_is_on_is_built() -> None:
    telemetry = Telemetry.configure(metrics=True, env={"OTEL_TRACES_EXPORTER": "console"})
    try:
        assert telemetry.metrics is not None
        assert telemetry.tracing is not None
        assert len(telemetry.middleware()) == 2
    finally:
        telemetry.shutdown()


def test_a_worker_with_neither_imports_neither_sdk() -> None:
    # In a fresh interpreter: this one has imported both already.
    probe = (
        "import sys; from legato.telemetry.setup import Telemetry; "
        "t = Telemetry.configure(metrics=False, env={}); "
        "assert t.observer() is None and t.middleware() == []; "
        "print(sorted(m for m in ('opentelemetry.sdk', 'prometheus_client') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
