"""validate(manifest) -> ValidationReport: the one entry point for "is this TFTrainingJob ok?".

Order: the envelope (apiVersion, kind, metadata.name), then the schema (types, enums, ranges,
unknown fields, via pydantic), then the cross-field rules on the resolved spec. Rules need a
parsed spec, so they run only when the schema is satisfied; the user fixes those errors first.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tftj.api.errors import Problem, ValidationReport, error
from tftj.api.messages import given, translate
from tftj.api.models import API_VERSION, KIND, TFTrainingJob, TFTrainingJobSpec
from tftj.api.resolve import derive, resolve_spec
from tftj.api.rules import check_name, check_resolved


def is_job_document(document: Any) -> bool:
    """Whether a document is meant as a TFTrainingJob (its kind says so), valid or not."""
    return isinstance(document, dict) and document.get("kind") == KIND


def _envelope(manifest: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    if manifest.get("apiVersion") != API_VERSION:
        problems.append(
            error("apiVersion", f"must be {API_VERSION}, got {given(manifest.get('apiVersion'))}")
        )
    if manifest.get("kind") != KIND:
        problems.append(error("kind", f"must be {KIND}, got {given(manifest.get('kind'))}"))
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict):
        problems.append(error("metadata", f"must be a mapping with a name, got {given(metadata)}"))
    elif "generateName" not in metadata or "name" in metadata:
        problems.extend(check_name(metadata.get("name")))
    return problems


def parse_job(manifest: Any) -> tuple[TFTrainingJob | None, list[Problem]]:
    """The manifest as a model (None if the schema rejects it) and the envelope/schema problems."""
    if not isinstance(manifest, dict):
        return None, [error("", f"a manifest must be a mapping, got {given(manifest)}")]
    problems = _envelope(manifest)
    try:
        job = TFTrainingJob.model_validate(manifest)
    except ValidationError as exc:
        envelope_paths = {p.path for p in problems}
        problems.extend(p for p in translate(exc) if p.path not in envelope_paths)
        return None, problems
    return job, problems  # a bad name does not stop the spec's own checks


def validate_spec(spec: TFTrainingJobSpec) -> list[Problem]:
    """Cross-field problems (errors and warnings) of an already parsed spec."""
    # resolve() minus the parameters hash, which no rule needs (and which costs a JSON dump).
    resolved = resolve_spec(spec)
    return list(check_resolved(resolved, derive(resolved)))


def validate(manifest: Any) -> ValidationReport:
    """Every error and warning of a TFTrainingJob manifest (a parsed YAML/JSON document)."""
    job, problems = parse_job(manifest)
    if job is not None:
        problems.extend(validate_spec(job.spec))
    return ValidationReport.of(problems)
