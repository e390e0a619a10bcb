"""The alert rules in config/ ask only for metrics legato exports, with labels it sets."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT
from tests.promtool import promtool
from tests.unit.test_grafana import exported_series

RULES = ROOT / "config" / "prometheus" / "legato-alerts.yaml"
RULE_TESTS = ROOT / "config" / "prometheus" / "tests" / "legato-alerts.test.yaml"


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


def test_promtool_accepts_the_rules() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout


def test_every_alert_fires_on_its_series_and_the_others_stay_quiet() -> None:
    """``promtool test rules``: for each alert, given series, exactly the expected
    alerts (labels and rendered annotations) fire, and none before its ``for:``."""
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_rule_tests_cover_every_alert_firing_and_quiet() -> None:
    alerts = {r["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for r in group["rules"]}
    cases = [
        case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]
    ]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    assert fired == alerts, alerts - fired
    for case in cases:
        for alert in case["exp_alerts"]:
            # The rendered summary is checked, so a broken template fails the test.
            assert alert["exp_annotations"]["summary"], case
    # Every alert's firing case has series beside it that must not fire: promtool
    # fails a case on any alert it did not expect, so a quiet series is checked too.
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        assert len(test["input_series"]) >= 2, test["name"]
