"""The CRD's CEL rules and the Python rules agree: same cases, same verdicts (cel-python)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cases import CASES, Case
from kubeschema import cel_eval
from test_rules import found
from tftj.api.cel import CEL_RULES, CelRule

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _covers(rule: CelRule, case: Case) -> bool:
    return rule.rule == case.rule and case.path.startswith(rule.reported_path.removesuffix("[0]"))


CEL_CASES = [case for case in CASES if any(_covers(rule, case) for rule in CEL_RULES)]


@pytest.mark.parametrize("rule", CEL_RULES, ids=lambda r: r.reported_path)
def test_every_cel_rule_rejects_a_case_python_rejects(rule: CelRule) -> None:
    cases = [case for case in CASES if _covers(rule, case)]
    assert cases, f"no case in tests/unit/cases.py exercises the CEL rule at {rule.reported_path}"
    assert any(not cel_eval(rule, case.manifest("bad")) for case in cases)


@pytest.mark.parametrize("case", CEL_CASES, ids=lambda c: c.id)
def test_cel_and_python_reach_the_same_verdict(case: Case) -> None:
    rules = [rule for rule in CEL_RULES if _covers(rule, case)]
    for which in ("bad", "good"):
        python_rejects = bool(found(case, which))
        cel_rejects = any(not cel_eval(rule, case.manifest(which)) for rule in rules)
        assert cel_rejects == python_rejects == (which == "bad"), which


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_manifests_python_accepts_pass_every_cel_rule(case: Case) -> None:
    good = case.manifest("good")
    rejected = [r.reported_path for r in CEL_RULES if not cel_eval(r, good)]
    assert rejected == []


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_pass_every_cel_rule(path: Path) -> None:
    manifest = yaml.safe_load(path.read_text())
    assert [r.reported_path for r in CEL_RULES if not cel_eval(r, manifest)] == []
