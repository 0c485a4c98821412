"""The monitoring bundle's generated files: up to date with operator/tftj/monitoring.py, valid
for promtool, and the alerts fire (and stay quiet) on the fixtures of promtool's rule tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tftj import monitoring

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "charts" / "tftj" / "files"
PROMTOOL = "/usr/bin/promtool"
STALE = "{} is stale: run `make generate` (python -m tftj.monitoring rules|dashboard)"


def test_generated_files_are_up_to_date() -> None:
    rules = FILES / "prometheus-rules.yaml"
    dashboard = FILES / "grafana-dashboard.json"
    assert rules.read_text() == monitoring.rules_yaml(), STALE.format(rules)
    assert dashboard.read_text() == monitoring.dashboard_json(), STALE.format(dashboard)


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(FILES / "prometheus-rules.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(monitoring.ALERTS)} rules found" in result.stdout


def test_promtool_rule_tests_pass() -> None:
    tests = REPO / "tests" / "unit" / "promtool"
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts-test.yaml"],
        cwd=tests,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Every alert is exercised by the fixtures.
    fixtures = (tests / "alerts-test.yaml").read_text()
    assert [a.name for a in monitoring.ALERTS if f"alertname: {a.name}" not in fixtures] == []


def test_every_query_of_the_dashboard_comes_from_the_one_source() -> None:
    dashboard = json.loads((FILES / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs and set(exprs) <= set(monitoring.queries().values())
    titles = [p["title"] for p in dashboard["panels"] if p["type"] != "row"]
    for wanted in ("Loss", "Examples per second", "Step time", "Epoch progress", "ETA"):
        assert wanted in titles
    for wanted in ("Reconciles", "Reconcile latency", "Work queue depth", "Webhook latency"):
        assert wanted in titles
