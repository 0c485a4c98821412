"""The chart's RBAC rules file stays minimal."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("verb_forbidden", [("tftrainingjobs", "update"), ("pods", "create")])
def test_rbac_rules_stay_minimal(verb_forbidden: tuple[str, str]) -> None:
    rules = yaml.safe_load((REPO / "charts/tftj/files/operator-rbac-rules.yaml").read_text())
    resource, verb = verb_forbidden
    assert not any(resource in r["resources"] and verb in r["verbs"] for r in rules)
