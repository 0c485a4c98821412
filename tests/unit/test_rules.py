"""Every cross-field rule rejects (or warns about) its failing case and accepts its passing one."""

from __future__ import annotations

import pytest
from cases import CASES, Case, manifest
from tftj.api.errors import Problem
from tftj.api.rules import RULES
from tftj.api.validate import validate


def at(problems: list[Problem] | tuple[Problem, ...], path: str) -> list[Problem]:
    """Problems reported at `path` or at one of its items (path[0], path[1], ...)."""
    return [p for p in problems if p.path == path or p.path.startswith(path + "[")]


def found(case: Case, which: str) -> list[Problem]:
    report = validate(case.manifest(which))
    problems = report.errors if case.severity == "error" else report.warnings
    return at(list(problems), case.path)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_failing_case_is_reported_at_the_field_with_what_is_allowed(case: Case) -> None:
    problems = found(case, "bad")
    assert problems, f"{case.rule} did not report {case.path}"
    assert any(case.says in p.message for p in problems), [str(p) for p in problems]
    if not case.path.startswith("metadata."):  # names are checked before the spec rules
        assert any(p.rule == case.rule for p in problems)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_passing_case_is_accepted(case: Case) -> None:
    assert found(case, "good") == []
    report = validate(case.manifest("good"))
    assert report.ok, [str(p) for p in report.errors]


def test_every_rule_has_a_case() -> None:
    covered = {case.rule for case in CASES}
    missing = [rule.__name__ for rule in RULES if rule.__name__ not in covered]
    assert not missing, f"rules without a failing/passing case: {missing}"


def test_huge_quantities_do_not_crash_the_limits_rule() -> None:
    # Found by hypothesis: Decimal overflowed on an exponent the quantity grammar allows.
    spec = {
        "data": {"format": "synthetic"},
        "workers": {"resources": {"requests": {"memory": "1"}, "limits": {"memory": "1E1000000"}}},
    }
    assert validate(manifest(spec)).ok
