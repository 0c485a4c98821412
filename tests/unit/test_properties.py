"""Properties over generated specs: resolve() is idempotent, valid specs fit the CRD, CEL == Python."""

from __future__ import annotations

from typing import Any

import jsonschema
from cases import manifest
from hypothesis import HealthCheck, assume, given, settings
from kubeschema import CRD_SCHEMA, apply_defaults, json_schema, rejecting_rules
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
    defaulted = apply_defaults(CRD_SCHEMA, m)
    assert [e.message for e in CRD_VALIDATOR.iter_errors(defaulted)] == []
    # ... and by its CEL rules.
    assert [r.reported_path for r in rejecting_rules(m)] == []


def _without_empty(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in ({}, [])}
    return value


def test_crd_defaults_are_the_models_defaults() -> None:
    m = manifest()
    defaulted = apply_defaults(CRD_SCHEMA, m)["spec"]
    model = TFTrainingJobSpec.model_validate(m["spec"]).model_dump(by_alias=True, exclude_none=True)
    # Empty maps and lists are the models' defaults but are not stored (absent means empty),
    # so `kubectl describe` prints no empty fields.
    assert defaulted == _without_empty(model)
    assert "podTemplate" not in defaulted["workers"] and "scheduling" not in defaulted


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
def test_webhook_verdict_after_crd_defaulting_is_the_offline_verdict(spec: dict[str, Any]) -> None:
    # The webhook sees the object after the apiserver applied the CRD defaults; `tftj validate`
    # sees it as written. Both must report the same problems.
    m = manifest(spec)
    assert validate(apply_defaults(CRD_SCHEMA, m)) == validate(m)
