"""Properties over generated specs: resolve() is idempotent, valid specs fit the CRD, CEL == Python."""

from __future__ import annotations

from typing import Any

import jsonschema
from cases import manifest
from hypothesis import HealthCheck, assume, given, settings
from kubeschema import CRD_SCHEMA, json_schema, rejecting_rules
from specgen import specs
from tftj.api.cel import CEL_RULES
from tftj.api.models import TFTrainingJobSpec
from tftj.api.resolve import resolve
from tftj.api.validate import validate

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
CRD_VALIDATOR = jsonschema.Draft4Validator(json_schema(CRD_SCHEMA))


@SETTINGS
@given(specs())
def test_every_generated_spec_parses(spec: dict[str, Any]) -> None:
    # The generator follows the JSON schema; pydantic must accept all of it (same constraints).
    TFTrainingJobSpec.model_validate(spec)


@SETTINGS
@given(specs())
def test_resolve_is_idempotent(spec: dict[str, Any]) -> None:
    once = resolve(TFTrainingJobSpec.model_validate(spec), name="job")
    twice = resolve(once.spec, name="job")
    assert twice == once


@settings(SETTINGS, max_examples=40)
@given(specs())
def test_every_valid_spec_is_accepted_by_the_crd_schema(spec: dict[str, Any]) -> None:
    m = manifest(spec)
    assume(validate(m).ok)
    errors = [e.message for e in CRD_VALIDATOR.iter_errors(m)]
    assert errors == []
    # ... and by its CEL rules.
    assert [r.reported_path for r in rejecting_rules(m)] == []


def _defaults(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        return ["default"] * ("default" in schema) + [
            p for v in schema.values() for p in _defaults(v)
        ]
    if isinstance(schema, list):
        return [p for v in schema for p in _defaults(v)]
    return []


def test_the_crd_stores_the_spec_as_written() -> None:
    # No structural defaults: the operator resolves them (docs/api.md explains why).
    assert _defaults(CRD_SCHEMA) == []


@SETTINGS
@given(specs())
def test_cel_and_python_agree_on_generated_specs(spec: dict[str, Any]) -> None:
    m = manifest(spec)
    report = validate(m)
    python_paths = {p.path.split("[")[0] for p in report.errors}
    # warmup: Python counts in steps where they are known (rounded); CEL can only use epochs.
    rejected = {rule.reported_path.split("[")[0] for rule in rejecting_rules(m)}
    by_path = {r.reported_path.split("[")[0]: False for r in CEL_RULES}
    by_path.update(dict.fromkeys(rejected, True))
    for path, cel_rejects in by_path.items():
        if path == "spec.training.schedule.warmupEpochs" and not cel_rejects:
            continue
        if path == "spec.workers.podTemplate.env":
            python_rejects = any(p.startswith(path) for p in python_paths)
        else:
            python_rejects = path in python_paths
        assert cel_rejects == python_rejects, path


@SETTINGS
@given(specs())
def test_cel_reads_the_defaults_resolve_fills(spec: dict[str, Any]) -> None:
    # The CEL rules see the spec as written; with every default written out they must reach
    # the same verdicts (with_defaults() substitutes the models' defaults for absent fields).
    m = manifest(spec)
    assume(not [e for e in CRD_VALIDATOR.iter_errors(m)])
    filled = TFTrainingJobSpec.model_validate(spec).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    assert rejecting_rules(m) == rejecting_rules(manifest(filled))
