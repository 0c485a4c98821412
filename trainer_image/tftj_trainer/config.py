"""The trainer's inputs: the resolved parameters file (re-validated) and the storage layout.

The params file is `resolved_to_dict(resolve(spec))` as YAML. The trainer trusts nothing: it
parses it with the same pydantic models, checks it is a fixed point of resolve() (so it is what
`tftj resolve` and `kubectl describe` show) and that the parameters hash matches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from tftj.api.contract import ENV_STORAGE_ROOT
from tftj.api.messages import translate
from tftj.api.resolve import ResolvedParameters, resolve, resolved_from_dict, resolved_to_dict
from tftj.api.validate import validate

from tftj_trainer.exitcodes import ParametersError


def load_params(path: str | os.PathLike[str]) -> ResolvedParameters:
    """The resolved parameters in `path`, or ParametersError with a one-line reason."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ParametersError(f"params file {path}: {error.strerror or error}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ParametersError(f"params file {path}:{where} not valid YAML") from None
    if not isinstance(raw, dict):
        raise ParametersError(f"params file {path}: expected a mapping, got {type(raw).__name__}")
    try:
        params = resolved_from_dict(raw)
    except ValidationError as error:
        raise ParametersError(f"params file {path}: {first_validation_error(error)}") from None
    problems = semantic_errors(params)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ParametersError(f"params file {path}: {problems[0]}{more}")
    again = resolve(params.spec, name=params.job.name, namespace=params.job.namespace)
    if again.parameters_hash != params.parameters_hash:
        raise ParametersError(
            f"params file {path}: parametersHash is {params.parameters_hash} but the parameters "
            f"hash to {again.parameters_hash}: the file was edited after resolve()"
        )
    if resolved_to_dict(again) != resolved_to_dict(params):
        raise ParametersError(
            f"params file {path}: not the output of resolve(): its defaults or derived values "
            "differ from what resolve() computes for its spec"
        )
    return params


def first_validation_error(error: ValidationError) -> str:
    """`spec.training.learningRate: must be > 0 and <= 10, got -1` (plus a count of others)."""
    problems = [str(problem) for problem in translate(error)]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def semantic_errors(params: ResolvedParameters) -> list[str]:
    """Cross-field rules from tftj.api.validate.

    The schema's per-field rules are already enforced by the pydantic models; validate() adds
    the cross-field ones (loss fits task, batch divisible by replicas, ...).
    """
    manifest: dict[str, Any] = {
        "apiVersion": "tftj.dev/v1alpha1",
        "kind": "TFTrainingJob",
        "metadata": {"name": params.job.name, "namespace": params.job.namespace or "default"},
        "spec": params.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    return [str(problem) for problem in validate(manifest).errors]


@dataclass(frozen=True)
class StoragePaths:
    """Where this job's logs, checkpoints and export live (all under the storage root)."""

    root: Path
    logs: Path
    checkpoints: Path
    export: Path


def storage_paths(params: ResolvedParameters, root: str | None) -> StoragePaths:
    """Root from --storage-root, else $TFTJ_STORAGE_ROOT (set by the operator), else mountPath."""
    chosen = Path(root or os.environ.get(ENV_STORAGE_ROOT) or params.spec.storage.mount_path)
    spec = params.spec
    return StoragePaths(
        root=chosen,
        logs=chosen / spec.logging.directory,
        checkpoints=chosen / spec.checkpoint.directory,
        export=chosen / spec.export.directory,
    )


@dataclass(frozen=True)
class LogLevels:
    trainer: str  # the tftj_trainer logger
    others: str  # every other Python logger (tensorflow, absl): their INFO lines are noise
    tf_cpp: str  # TF_CPP_MIN_LOG_LEVEL, read once when TensorFlow is imported


def log_levels(level: str) -> LogLevels:
    """What logging.level means for each log source."""
    return LogLevels(
        trainer=level.upper(),
        others="DEBUG" if level == "debug" else max(level.upper(), "WARNING", key=_ORDER.index),
        tf_cpp={"debug": "0", "info": "1", "warning": "1", "error": "2"}[level],
    )


_ORDER = ["DEBUG", "INFO", "WARNING", "ERROR"]


def metrics_port(params: ResolvedParameters, override: int | None) -> int:
    """metrics.port, unless the command line says otherwise (tftj run gives each worker one)."""
    return params.spec.metrics.port if override is None else override
