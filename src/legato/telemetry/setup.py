"""What a process turns on: metrics when it serves HTTP, traces when OTEL_* says."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from legato.broker.base import Topology
from legato.observe import Observer, Observers
from legato.telemetry.metrics import Metrics
from legato.telemetry.tracing import Tracing
from legato.worker.middleware import Middleware


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
        tracing = Tracing.from_env(
            env, topology=topology, messaging_system="legato.memory" if embedded_broker else "rabbitmq"
        )
        return cls(Metrics() if metrics else None, tracing)

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
