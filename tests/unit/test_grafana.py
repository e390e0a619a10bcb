"""The Grafana dashboard in config/ asks only for metrics legato exports."""

from __future__ import annotations

import json
import re

from legato.telemetry.metrics import Metrics
from tests.conftest import ROOT

DASHBOARD = ROOT / "config" / "grafana" / "legato-dashboard.json"


def exported_series() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        kind = family.type
        names.add(family.name)
        if kind == "counter":
            names.add(f"{family.name}_total")
        if kind == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def test_every_panel_queries_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_series()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    titles = {p["title"] for p in panels}
    for wanted in (
        "Runs completed per hour",
        "Average completion time",
        "Failure rate by workflow",
        "SLA compliance",
        "Step success rate",
        "Step latency p50 / p95 / p99",
        "Queue lag p95 (dispatch → start)",
        "Dead letters per hour",
        "Rate-limit waits",
    ):
        assert wanted in titles
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\blegato_[a-z_]+", target["expr"]))
            assert used, (panel["title"], target["expr"])
            assert used <= exported, (panel["title"], used - exported)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
