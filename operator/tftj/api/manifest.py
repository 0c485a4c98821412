"""Manifest files on disk: load the one TFTrainingJob in a file, and make its local paths usable.

Shared by `tftj resolve`, `tftj run` (the local runner) and anything else that starts from a
file. A relative data path in a manifest means "next to this manifest" when run locally, so
`tftj run examples/digits-mlp.yaml` works from any directory; in a cluster the same relative
path is relative to the trainer container's working directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tftj.api.errors import Problem, ValidationReport
from tftj.api.models import TFTrainingJob, TFTrainingJobSpec
from tftj.api.validate import is_job_document, parse_job, validate_spec
from tftj.api.yamlload import LoadError, iter_documents


class ManifestError(Exception):
    """A manifest that cannot be used; str() is the full user-facing message."""

    def __init__(self, source: str, problems: list[Problem] | list[str]) -> None:
        self.source = source
        self.problems = [str(p) for p in problems]
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


def read_job_document(path: Path) -> dict[str, Any]:
    """The first TFTrainingJob document of a YAML file (other kinds are skipped)."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ManifestError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    for doc in iter_documents(text):
        if isinstance(doc, LoadError):
            raise ManifestError(f"{path}:{doc.index}", [str(doc)])
        if is_job_document(doc.data):
            data: dict[str, Any] = doc.data
            return data
    raise ManifestError(str(path), ["no TFTrainingJob document (kind: TFTrainingJob) found"])


def load_job(path: Path) -> tuple[TFTrainingJob, ValidationReport]:
    """The validated job of a manifest file and its warnings; raises ManifestError on errors."""
    data = read_job_document(path)
    job, problems = parse_job(data)
    if job is not None:
        problems.extend(validate_spec(job.spec))
    report = ValidationReport.of(problems)
    if job is None or not report.ok:
        raise ManifestError(str(path), list(report.errors))
    return job, report


def _is_local(path: str) -> bool:
    return "://" not in path and not os.path.isabs(path)


def resolve_local_paths(spec: TFTrainingJobSpec, manifest_dir: Path) -> TFTrainingJobSpec:
    """The spec with relative data paths made absolute against the manifest's directory."""
    data = spec.data
    update: dict[str, str] = {}
    for attr in ("path", "validation_path"):
        value = getattr(data, attr)
        if value is not None and _is_local(value):
            update[attr] = str((manifest_dir / value).resolve())
    if not update:
        return spec
    return spec.model_copy(update={"data": data.model_copy(update=update)})
