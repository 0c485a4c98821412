"""resolve(): a spec in, every value the trainer will use out. Pure, deterministic, idempotent.

The same function runs in the webhook, the operator, `tftj resolve`/`tftj run` and the trainer's
config loader, so what `kubectl describe` shows is exactly what trains. Defaults that depend on
other fields (loss, outputUnits, metrics, optimizer hyper-parameters) are filled here; values
computed from several fields are returned under `derived`, each named.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from pydantic import ConfigDict, Field

from tftj.api.models import (
    Loss,
    Metric,
    Model,
    ModelSpec,
    OptimizerParams,
    Task,
    TFTrainingJobSpec,
    Training,
)
from tftj.api.schema import number_text

DEFAULT_LOSS: dict[Task, Loss] = {
    "classification": "sparse-categorical-crossentropy",
    "binary": "binary-crossentropy",
    "regression": "mse",
}
DEFAULT_METRICS: dict[Task, list[Metric]] = {
    "classification": ["loss", "accuracy"],
    "binary": ["loss", "accuracy", "auc"],
    "regression": ["loss", "mae"],
}
DEFAULT_OUTPUT_UNITS: dict[Task, int] = {"classification": 10, "binary": 1, "regression": 1}

# Which optimizerParams each optimizer accepts, with the defaults resolve() fills in.
# (Matches tf_keras' own defaults, so an unset value trains exactly as Keras would.)
OPTIMIZER_DEFAULTS: dict[str, dict[str, float | bool]] = {
    "sgd": {},
    "momentum": {"momentum": 0.9, "nesterov": False},
    "adam": {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-07, "amsgrad": False},
    "adamw": {
        "beta1": 0.9,
        "beta2": 0.999,
        "epsilon": 1e-07,
        "amsgrad": False,
        "weightDecay": 0.004,
    },
    "nadam": {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-07},
    "rmsprop": {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-07, "centered": False},
    "adagrad": {"initialAccumulatorValue": 0.1, "epsilon": 1e-07},
}

# The spec sections that define *what is trained*. The hash covers exactly these, so two jobs
# that train the same thing share a hash whatever their names, queues or deadlines.
HASHED_SECTIONS = ("training", "model", "data", "workers", "checkpoint", "export", "logging")
HASHED_WORKER_FIELDS = ("replicas", "gpusPerWorker", "image")


class Internal(Model):
    """Objects tftj builds itself (not user input) may also be constructed by field name."""

    model_config = ConfigDict(validate_by_name=True)


class Derived(Internal):
    """Values computed from several fields; named so users can see how they came about."""

    replicas_in_sync: int = Field(
        description="Model replicas training in lock-step: workers x max(1, gpusPerWorker)."
    )
    per_replica_batch_size: int = Field(
        description="Examples each replica processes per step: batchSize / replicasInSync."
    )
    effective_learning_rate: float = Field(
        description="learningRate after learningRateScaling: what the schedule starts from."
    )
    total_gpus: int = Field(description="GPUs requested by all workers together.")
    num_features: int | None = Field(
        None, description="Input width when known before reading the data."
    )
    train_examples: int | None = Field(
        None, description="Training examples when known before reading the data (synthetic)."
    )
    validation_examples: int | None = Field(
        None, description="Validation examples when known before reading the data (synthetic)."
    )
    steps_per_epoch: int | None = Field(
        None, description="Optimizer steps per epoch when known before reading the data."
    )
    total_steps: int | None = Field(None, description="stepsPerEpoch x epochs, when known.")
    warmup_steps: int | None = Field(
        None, description="schedule.warmupEpochs in steps, when steps per epoch are known."
    )


class JobRef(Internal):
    name: str = Field(description="metadata.name of the TFTrainingJob.")
    namespace: str | None = Field(None, description="Its namespace (none in local runs).")


class ResolvedParameters(Internal):
    """What the trainer reads from /etc/tftj/params.yaml and the operator puts in status."""

    job: JobRef
    spec: TFTrainingJobSpec
    derived: Derived
    parameters_hash: str


def resolve_spec(spec: TFTrainingJobSpec) -> TFTrainingJobSpec:
    """The spec with every task- and optimizer-dependent default filled in."""
    task = spec.model.task
    training = spec.training
    known = OPTIMIZER_DEFAULTS[training.optimizer]
    given = training.optimizer_params.model_dump(by_alias=True, exclude_none=True)
    params = {key: given.get(key, default) for key, default in known.items()}
    # Parameters the optimizer does not accept stay as given, so validation can name them.
    params.update({k: v for k, v in given.items() if k not in known})
    training = training.model_copy(
        update={
            "loss": training.loss or DEFAULT_LOSS[task],
            "metrics": list(training.metrics or DEFAULT_METRICS[task]),
            "optimizer_params": OptimizerParams.model_validate(params),
        }
    )
    model: ModelSpec = spec.model
    if model.output_units is None:
        model = model.model_copy(update={"output_units": DEFAULT_OUTPUT_UNITS[task]})
    return spec.model_copy(update={"training": training, "model": model})


def effective_learning_rate(training: Training) -> float:
    scaling = training.learning_rate_scaling
    ratio = training.batch_size / scaling.reference_batch_size
    if scaling.rule == "linear":
        return training.learning_rate * ratio
    if scaling.rule == "sqrt":
        return training.learning_rate * math.sqrt(ratio)
    return training.learning_rate


def derive(spec: TFTrainingJobSpec) -> Derived:
    """Derived values of an already resolved spec. Never raises on an invalid spec."""
    workers = spec.workers
    training = spec.training
    data = spec.data
    replicas_in_sync = workers.replicas * max(1, workers.gpus_per_worker)
    num_features = data.synthetic.features if data.format == "synthetic" else data.num_features
    train_examples = validation_examples = None
    if data.format == "synthetic":
        validation_examples = int(data.synthetic.examples * data.validation_split)
        train_examples = data.synthetic.examples - validation_examples
    steps_per_epoch = training.steps_per_epoch
    if steps_per_epoch is None and train_examples is not None:
        steps_per_epoch = max(1, math.ceil(train_examples / training.batch_size))
    total_steps = warmup_steps = None
    if steps_per_epoch is not None:
        total_steps = steps_per_epoch * training.epochs
        warmup_steps = round(spec.training.schedule.warmup_epochs * steps_per_epoch)
    return Derived(
        replicas_in_sync=replicas_in_sync,
        per_replica_batch_size=max(1, training.batch_size // replicas_in_sync),
        effective_learning_rate=effective_learning_rate(training),
        total_gpus=workers.replicas * workers.gpus_per_worker,
        num_features=num_features,
        train_examples=train_examples,
        validation_examples=validation_examples,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
    )


def parameters_hash(spec: TFTrainingJobSpec) -> str:
    """Stable 16-hex-digit hash of what is trained (see HASHED_SECTIONS)."""
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    hashed: dict[str, Any] = {key: dumped[key] for key in HASHED_SECTIONS if key in dumped}
    hashed["workers"] = {k: dumped["workers"][k] for k in HASHED_WORKER_FIELDS}
    canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def resolve(
    spec: TFTrainingJobSpec, *, name: str, namespace: str | None = None
) -> ResolvedParameters:
    """Defaults filled, derived values computed and named, plus the parameters hash."""
    resolved = resolve_spec(spec)
    return ResolvedParameters(
        job=JobRef(name=name, namespace=namespace),
        spec=resolved,
        derived=derive(resolved),
        parameters_hash=parameters_hash(resolved),
    )


def resolved_to_dict(resolved: ResolvedParameters) -> dict[str, Any]:
    """The wire form (camelCase, JSON types, unset optionals omitted) for YAML and status."""
    return resolved.model_dump(mode="json", by_alias=True, exclude_none=True)


def resolved_from_dict(data: dict[str, Any]) -> ResolvedParameters:
    """Parse the wire form back (the trainer's loader); raises pydantic.ValidationError."""
    return ResolvedParameters.model_validate(data)


def _not_shown(full: Any, shown: Any) -> Any:
    """The parts of `full` that `shown` does not already hold (None: nothing). Empty maps and
    lists count as shown: an absent collection is an empty one."""
    if isinstance(full, dict):
        given = shown if isinstance(shown, dict) else {}
        missing = {key: _not_shown(value, given.get(key)) for key, value in full.items()}
        return {key: value for key, value in missing.items() if value is not None} or None
    if full in ({}, []) or full == shown:
        return None
    return full


def _text(value: Any) -> str:
    """A value as one word: true, 0.001, 1e-07, 10, constant, [256,128], {"cpu":"1"}."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float):
        return number_text(value)
    return str(value)


def one_line(values: dict[str, Any]) -> str:
    """`key=value key=value`: one group of parameters as `kubectl describe` prints it in a line."""
    return " ".join(f"{key}={_text(value)}" for key, value in values.items())


def _groups(values: dict[str, Any], path: str, out: dict[str, str]) -> dict[str, str]:
    """One line per object: its own values on it, each nested object on a line of its own."""
    flat = {k: v for k, v in values.items() if not isinstance(v, dict) or not v}
    if flat:
        out[path] = one_line(flat)
    for key, value in values.items():
        if isinstance(value, dict) and value:
            _groups(value, f"{path}.{key}", out)
    return out


def status_parameters(resolved: ResolvedParameters, stored_spec: dict[str, Any]) -> dict[str, Any]:
    """status.resolvedParameters, written for people (`kubectl describe`): each value the
    trainer uses that the stored spec does not show, once, one line per group. `derived` holds
    the values computed from several fields; `defaults` maps a spec path (spec.training.schedule)
    to the defaults the operator resolved there. The stored spec is as written (the CRD has no
    defaults), so spec + defaults is exactly the resolved spec; programs read that whole, typed,
    from ConfigMap <name>-params (params.yaml) instead."""
    wire = resolved_to_dict(resolved)
    shown: dict[str, Any] = {"derived": one_line(wire["derived"])}
    filled = _not_shown(wire["spec"], stored_spec)
    if filled is not None:
        shown["defaults"] = _groups(filled, "spec", {})
    return shown
