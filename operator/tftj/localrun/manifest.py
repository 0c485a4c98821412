"""The resolved parameters of a local run: the manifest, validated, with the local overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tftj.api.models import TFTrainingJob
from tftj.api.resolve import ResolvedParameters, resolve

DATA_PATH_FIELDS = ("path", "validationPath")


class ManifestError(Exception):
    """The manifest cannot be run; the message lists what is wrong, one problem per line."""


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as error:
        raise ManifestError(f"{path}: {error.strerror or error}") from None
    try:
        from tftj.api.yamlload import load_one

        document = load_one(text)
    except ValueError as error:
        raise ManifestError(f"{path}: {error}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"{path}: expected a TFTrainingJob mapping")
    return document


def is_local_path(value: str) -> bool:
    return "://" not in value and not value.startswith("/")


def local_manifest(manifest: dict[str, Any], base: Path, workers: int | None) -> dict[str, Any]:
    """The manifest a local run trains: CPU workers (gpusPerWorker 0), the requested worker
    count, and relative data paths made absolute against the manifest's directory."""
    local = copy.deepcopy(manifest)
    spec = local.get("spec")
    if not isinstance(spec, dict):
        return local  # validation names the problem
    group = spec.setdefault("workers", {})
    if isinstance(group, dict):
        if workers is not None:
            group["replicas"] = workers
        group["gpusPerWorker"] = 0
    data = spec.get("data")
    if isinstance(data, dict):
        for key in DATA_PATH_FIELDS:
            value = data.get(key)
            if isinstance(value, str) and is_local_path(value):
                data[key] = str((base / value).resolve())
    return local


def local_parameters(path: Path, workers: int | None) -> tuple[ResolvedParameters, list[str]]:
    """The resolved parameters and the validation warnings, or ManifestError."""
    from tftj.api.validate import validate

    manifest = local_manifest(read_manifest(path), path.resolve().parent, workers)
    report = validate(manifest)
    if report.errors:
        raise ManifestError("\n".join(f"{path}: {e}" for e in report.errors))
    job = TFTrainingJob.model_validate(manifest)
    params = resolve(job.spec, name=job.metadata.name or path.stem)
    return params, [f"{path}: {w}" for w in report.warnings]


def write_params(params: ResolvedParameters, path: Path) -> None:
    from tftj.api.resolve import resolved_to_dict

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(resolved_to_dict(params), sort_keys=False))


def previous_run_conflict(params: ResolvedParameters, workdir: Path) -> str | None:
    """Why `workdir` cannot host this run: checkpoints of other parameters would be resumed."""
    previous = workdir / "params.yaml"
    checkpoints = workdir / params.spec.checkpoint.directory
    if not previous.exists() or not checkpoints.is_dir() or not any(checkpoints.iterdir()):
        return None
    try:
        old_hash = (yaml.safe_load(previous.read_text()) or {}).get("parametersHash")
    except yaml.YAMLError:
        old_hash = None
    if old_hash == params.parameters_hash:
        return None
    return (
        f"{workdir} holds checkpoints of other parameters ({old_hash}, these are "
        f"{params.parameters_hash}); resuming them would train a different model: use another "
        f"--workdir or remove {checkpoints}"
    )
