"""The alert rules in config/ ask only for metrics legato exports, with labels it sets."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT
from tests.unit.test_grafana import exported_series

RULES = ROOT / "config" / "prometheus" / "legato-alerts.yaml"


def test_every_alert_queries_exported_metrics() -> None:
    exported = exported_series() | {"up"}
    rules = [r for group in yaml.safe_load(RULES.read_text())["groups"] for r in group["rules"]]
    assert {r["alert"] for r in rules} >= {
        "LegatoDeadLettersRising",
        "LegatoWorkflowFailureRateHigh",
        "LegatoSlaMissed",
        "LegatoScheduleStoppedFiring",
    }
    for rule in rules:
        metrics = set(re.findall(r"\b(legato_[a-z_]+|up)\b(?=\s*[{\[)])", rule["expr"]))
        assert metrics, rule["alert"]
        assert metrics <= exported, (rule["alert"], metrics - exported)
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]
