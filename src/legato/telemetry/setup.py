"""What a process turns on: metrics when it serves HTTP, traces when OTEL_* says.

Each is imported only when it is turned on: the OpenTelemetry SDK and the
Prometheus client are a fifth of a worker's memory, of no use to a worker that
neither traces nor serves /metrics.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from legato.broker.base import Topology
from legato.observe import Observer, Observers
from legato.worker.middleware import Middleware

if TYPE_CHECKING:
    from legato.telemetry.metrics import Metrics
    from legato.telemetry.tracing import Tracing


def tracing_named(env: Mapping[str, str]) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces at all (which exporter, and
    whether it exists, is :func:`legato.telemetry.tracing.exporters_from_env`'s to say)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        return any(n.strip() not in ("", "none") for n in named.split(","))
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


@dataclass
class Telemetry:
    metrics: Metrics | None = None
    tracing: Tracing | None = None

    @classmethod
    def configure(
        cls,
        *,
        metrics: bool,
        topology: Topology | None = None,
        embedded_broker: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> Telemetry:
        tracing = None
        if tracing_named(os.environ if env is None else env):
            from legato.telemetry.tracing import Tracing

            tracing = Tracing.from_env(
                env, topology=topology, messaging_system="legato.memory" if embedded_broker else "rabbitmq"
            )
        if not metrics:
            return cls(None, tracing)
        from legato.telemetry.metrics import Metrics

        return cls(Metrics(), tracing)

    def observer(self) -> Observer | None:
        """The engine observer, or None when nothing is on."""
        found: list[Observer] = []
        if self.metrics is not None:
            found.append(self.metrics.observer())
        if self.tracing is not None:
            found.append(self.tracing.observer())
        if not found:
            return None
        return found[0] if len(found) == 1 else Observers(found)

    def middleware(self) -> list[Middleware]:
        """Tracing outermost, so the step span covers the metrics' bookkeeping too."""
        layers: list[Middleware] = []
        if self.tracing is not None:
            layers.append(self.tracing.middleware())
        if self.metrics is not None:
            layers.append(self.metrics.middleware())
        return layers

    def shutdown(self) -> None:
        """Export the spans still buffered; safe to call when tracing is off."""
        if self.tracing is not None:
            self.tracing.shutdown()
