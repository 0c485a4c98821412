"""The CRD's CEL rules and the Python rules agree: same cases, same verdicts (cel-python); and no
rule fails with its own evaluation error when a field it reads is invalid or missing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from cases import CASES, Case, manifest
from kubeschema import cel_eval, rejecting_rules
from test_rules import found
from tftj.api.cel import CEL_RULES, ITEMS, CelRule, integer_operands

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


def _set(spec: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    """A copy of `spec` with the field at `path` set (or removed when value is _ABSENT)."""
    out = copy.deepcopy(spec)
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {})
    if value is _ABSENT:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return out


_ABSENT = object()


def _operand_cases() -> list[tuple[CelRule, list[str], Any]]:
    """(rule, spec path of an integer it reads, an out-of-range or missing value)."""
    out = []
    for rule in CEL_RULES:
        if ITEMS in rule.at or not rule.at:
            continue  # no integers read there (list items: env; root: metadata.name)
        for ref, field in integer_operands(rule.at, rule.check):
            path = [*rule.at[1:], *ref.lstrip(".").split(".")]
            lo = int(field.get("minimum", field.get("exclusiveMinimum", 0)))
            hi = int(field.get("maximum", field.get("exclusiveMaximum", 0)))
            for value in (0, -1, lo - 1, hi + 1, 2**62, _ABSENT):
                out.append((rule, path, value))
    return out


@pytest.mark.parametrize(
    ("rule", "path", "value"),
    _operand_cases(),
    ids=lambda v: ".".join(v) if isinstance(v, list) else getattr(v, "reported_path", str(v)),
)
def test_no_rule_errors_when_a_field_it_reads_is_out_of_range_or_missing(
    rule: CelRule, path: list[str], value: Any
) -> None:
    # The apiserver runs every rule even when a field already failed its range; a rule that
    # errors then adds "... evaluating rule" noise to the real message (or hides it).
    for base in ({"data": {"format": "synthetic"}}, CSV_BASE):
        spec = _set(base, path, value)
        cel_eval(rule, manifest(spec))  # raises on an evaluation error


def test_out_of_range_replicas_do_not_leak_a_modulus_error() -> None:
    spec = {
        "data": {"format": "synthetic"},
        "training": {"batchSize": 32},
        "workers": {"replicas": 0, "gpusPerWorker": 0},
    }
    assert rejecting_rules(manifest(spec)) == []  # only the range error remains
    unguarded = next(r for r in CEL_RULES if r.rule == "batch_size_divisible_by_replicas")
    result = _raw_eval(unguarded.check, spec)
    assert isinstance(result, Exception), "the unguarded rule no longer errors: test is moot"


CSV_BASE = {"data": {"format": "tfrecord", "path": "x", "numFeatures": 3}}


def _raw_eval(expression: str, spec: dict[str, Any]) -> Any:
    env = celpy.Environment()
    try:
        return env.program(env.compile(expression)).evaluate({"self": celpy.json_to_cel(spec)})
    except celpy.CELEvalError as error:
        return error
