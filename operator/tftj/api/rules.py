"""Cross-field rules: what a structurally valid spec must also satisfy, and what is risky.

Each rule is a pure function of the *resolved* spec and its derived values and yields Problems
naming the field to change. Rules look only at values, never at which fields the user wrote, so
a manifest, the same manifest with its defaults written out, and an object stored by an older
CRD that defaulted it all get the same verdict. (So "decayRate only with an exponential or step
schedule" means "decayRate differs from its default".)

Rules that CEL can express are also in the CRD (tftj.api.cel, which names the rule it mirrors);
a unit test checks that both agree on the same cases.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import replace

from tftj.api.contract import PARAMS_DIR, SCRATCH_DIR
from tftj.api.errors import Problem, error, warning
from tftj.api.models import RunPolicy, Schedule, TFTrainingJobSpec
from tftj.api.naming import max_job_name_length
from tftj.api.quantity import parse_quantity
from tftj.api.resolve import OPTIMIZER_DEFAULTS, Derived

Rule = Callable[[TFTrainingJobSpec, Derived], Iterator[Problem]]

# Which tasks each metric and loss makes sense for (the matrix in Training.metrics/loss docs).
METRIC_TASKS: dict[str, frozenset[str]] = {
    "loss": frozenset({"classification", "binary", "regression"}),
    "accuracy": frozenset({"classification", "binary"}),
    "top-5-accuracy": frozenset({"classification"}),
    "auc": frozenset({"binary"}),
    "precision": frozenset({"binary"}),
    "recall": frozenset({"binary"}),
    "mae": frozenset({"regression"}),
    "mse": frozenset({"regression"}),
    "rmse": frozenset({"regression"}),
}
LOSS_TASKS: dict[str, frozenset[str]] = {
    "sparse-categorical-crossentropy": frozenset({"classification"}),
    "categorical-crossentropy": frozenset({"classification"}),
    "binary-crossentropy": frozenset({"binary"}),
    "hinge": frozenset({"binary"}),
    "mse": frozenset({"regression"}),
    "mae": frozenset({"regression"}),
    "huber": frozenset({"regression"}),
}
CROSSENTROPY_LOSSES = frozenset(
    {"sparse-categorical-crossentropy", "categorical-crossentropy", "binary-crossentropy"}
)
DECAY_SCHEDULES = frozenset({"exponential", "step"})
# Schedule fields whose non-default value only some schedule types use.
SCHEDULE_FIELD_TYPES: dict[str, tuple[str, frozenset[str]]] = {
    "decayRate": ("decay_rate", DECAY_SCHEDULES),
    "decayEpochs": ("decay_epochs", DECAY_SCHEDULES),
    "minLearningRate": ("min_learning_rate", frozenset({"cosine"})),
}
SCHEDULE_DEFAULTS: dict[str, float] = {
    alias: float(Schedule.model_fields[attr].default)
    for alias, (attr, _) in SCHEDULE_FIELD_TYPES.items()
}
# Optimizer param (wire name) -> optimizers that accept it, from resolve's table of defaults.
OPTIMIZERS_FOR_PARAM: dict[str, tuple[str, ...]] = {
    param: tuple(opt for opt, known in OPTIMIZER_DEFAULTS.items() if param in known)
    for param in sorted({p for known in OPTIMIZER_DEFAULTS.values() for p in known})
}
GPU_RESOURCE = "nvidia.com/gpu"
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _fmt(x: float) -> str:
    return f"{x:g}"


# ------------------------------------------------------------------------------------ errors


def batch_size_divisible_by_replicas(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    batch, n = spec.training.batch_size, d.replicas_in_sync
    if batch % n:
        lower, upper = (batch // n) * n, (batch // n + 1) * n
        options = " or ".join(str(x) for x in (lower, upper) if x > 0)
        yield error(
            "spec.training.batchSize",
            f"must be divisible by replicasInSync = {n} (workers.replicas "
            f"{spec.workers.replicas} x max(1, gpusPerWorker {spec.workers.gpus_per_worker})), "
            f"got {batch}; e.g. {options}",
        )


def warmup_shorter_than_training(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    warmup, epochs = spec.training.schedule.warmup_epochs, spec.training.epochs
    if d.warmup_steps is not None and d.total_steps is not None:
        if d.warmup_steps >= d.total_steps:
            yield error(
                "spec.training.schedule.warmupEpochs",
                f"must be shorter than training ({d.total_steps} steps = {epochs} epochs), "
                f"got {_fmt(warmup)} epochs = {d.warmup_steps} steps",
            )
    elif warmup >= epochs:
        yield error(
            "spec.training.schedule.warmupEpochs",
            f"must be less than training.epochs ({epochs}), got {_fmt(warmup)}",
        )


def metrics_fit_task(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    task = spec.model.task
    for i, metric in enumerate(spec.training.metrics or []):
        if task not in METRIC_TASKS[metric]:
            fits = sorted(m for m, tasks in METRIC_TASKS.items() if task in tasks)
            yield error(
                f"spec.training.metrics[{i}]",
                f"{metric} needs a {' or '.join(sorted(METRIC_TASKS[metric]))} task, but "
                f"model.task is {task}; use one of {', '.join(fits)}",
            )


def loss_fits_task(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    task, loss = spec.model.task, spec.training.loss
    if loss is not None and task not in LOSS_TASKS[loss]:
        fits = [name for name, tasks in LOSS_TASKS.items() if task in tasks]
        yield error(
            "spec.training.loss",
            f"must be one of {', '.join(fits)} for model.task {task}, got {loss}",
        )


def label_smoothing_needs_crossentropy(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    smoothing, loss = spec.training.label_smoothing, spec.training.loss
    if smoothing > 0 and loss not in CROSSENTROPY_LOSSES:
        yield error(
            "spec.training.labelSmoothing",
            f"only works with a crossentropy loss ({', '.join(sorted(CROSSENTROPY_LOSSES))}), "
            f"but training.loss is {loss}; got {_fmt(smoothing)}, use 0",
        )


def optimizer_params_fit_optimizer(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    optimizer = spec.training.optimizer
    given = spec.training.optimizer_params.model_dump(by_alias=True, exclude_none=True)
    for param in given:
        accepted = OPTIMIZERS_FOR_PARAM.get(param, ())
        if optimizer not in accepted:
            yield error(
                f"spec.training.optimizerParams.{param}",
                f"only applies to optimizer {' or '.join(accepted)}, but training.optimizer is "
                f"{optimizer}; remove it",
            )


def schedule_fields_fit_type(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    schedule = spec.training.schedule
    for alias, (attr, types) in SCHEDULE_FIELD_TYPES.items():
        value = float(getattr(schedule, attr))
        if schedule.type not in types and value != SCHEDULE_DEFAULTS[alias]:
            yield error(
                f"spec.training.schedule.{alias}",
                f"only applies to schedule type {' or '.join(sorted(types))}, but "
                f"schedule.type is {schedule.type}; got {_fmt(value)}, remove it",
            )


def min_learning_rate_below_effective(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    schedule = spec.training.schedule
    if schedule.type == "cosine" and schedule.min_learning_rate >= d.effective_learning_rate:
        yield error(
            "spec.training.schedule.minLearningRate",
            f"must be below the effective learning rate {_fmt(d.effective_learning_rate)}, "
            f"got {_fmt(schedule.min_learning_rate)}",
        )


def data_path_required(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    if spec.data.format != "synthetic" and spec.data.path is None:
        yield error("spec.data.path", f"required for format {spec.data.format}")


def tfrecord_needs_num_features(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    if spec.data.format == "tfrecord" and spec.data.num_features is None:
        yield error(
            "spec.data.numFeatures",
            "required for format tfrecord (records are parsed with a fixed length)",
        )


def validation_path_excludes_split(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    data = spec.data
    if data.validation_path is not None and data.validation_split > 0:
        yield error(
            "spec.data.validationSplit",
            f"must be 0 when data.validationPath is set, got {_fmt(data.validation_split)}",
        )


def output_units_fit_task(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    task, units = spec.model.task, spec.model.output_units
    if units is None:
        return
    if task == "classification" and units < 2:
        yield error(
            "spec.model.outputUnits",
            f"must be >= 2 (the number of classes) for classification, got {units}; "
            "for a yes/no label use model.task binary",
        )
    elif task == "binary" and units != 1:
        yield error(
            "spec.model.outputUnits",
            f"must be 1 for a binary task, got {units}; for {units} classes use model.task "
            "classification",
        )


def storage_claim_or_size(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    storage = spec.storage
    if storage.claim_name is not None and storage.size is not None:
        yield error(
            "spec.storage.size",
            f"set claimName (use an existing claim) or size (create one), not both; "
            f"got claimName {storage.claim_name!r} and size {storage.size!r}",
        )
    if storage.storage_class_name is not None and storage.size is None:
        yield error(
            "spec.storage.storageClassName",
            "only applies with storage.size (a claim tftj creates)",
        )


def tensorboard_needs_storage(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    if spec.tensorboard.enabled and not _has_storage(spec):
        yield error(
            "spec.tensorboard.enabled",
            "needs storage (storage.claimName or storage.size) to read the logs from",
        )


def priority_class_consistent(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    a = spec.scheduling.priority_class_name
    b = spec.workers.pod_template.priority_class_name
    if a is not None and b is not None and a != b:
        yield error(
            "spec.workers.podTemplate.priorityClassName",
            f"differs from scheduling.priorityClassName ({a!r}), got {b!r}; set only one",
        )


def env_value_or_value_from(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    for i, env in enumerate(spec.workers.pod_template.env):
        if env.value is not None and env.value_from is not None:
            yield error(
                f"spec.workers.podTemplate.env[{i}]",
                f"set value or valueFrom, not both (variable {env.name})",
            )


def gpus_from_gpus_per_worker(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    resources = spec.workers.resources
    for kind, amounts in (("requests", resources.requests), ("limits", resources.limits)):
        if GPU_RESOURCE in amounts:
            yield error(
                f"spec.workers.resources.{kind}",
                f"must not list {GPU_RESOURCE}; set workers.gpusPerWorker instead",
            )


def requests_within_limits(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    resources = spec.workers.resources
    for name, request in resources.requests.items():
        limit = resources.limits.get(name)
        if limit is None:
            continue
        req_value, limit_value = parse_quantity(request), parse_quantity(limit)
        if req_value is not None and limit_value is not None and req_value > limit_value:
            yield error(
                f"spec.workers.resources.requests.{name}",
                f"must not exceed limits.{name} ({limit}), got {request}",
            )


def ports_distinct(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    if spec.metrics.port == spec.workers.port:
        yield error(
            "spec.metrics.port",
            f"must differ from workers.port (the collective server), both are {spec.metrics.port}",
        )


# Weights of the built-in MLP: 2^28 float32 parameters are 1 GiB, ~4 GiB with gradients and
# Adam's two slots. Each layer is within its own bound, but two wide layers multiply: 65536 x
# 65536 would allocate 16 GiB for one kernel and the worker dies of OOM, retried for nothing.
MAX_MODEL_PARAMETERS = 2**28


def mlp_parameters(spec: TFTrainingJobSpec, d: Derived) -> int:
    """Weights and biases of the built-in MLP (input width 1 when unknown: a lower bound)."""
    widths = [d.num_features or 1, *spec.model.hidden_units, spec.model.output_units or 1]
    return sum(a * b + b for a, b in itertools.pairwise(widths))


def model_size_bounded(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    if spec.model.builder is not None:
        return  # the custom model decides its own size
    count = mlp_parameters(spec, d)
    if count > MAX_MODEL_PARAMETERS:
        yield error(
            "spec.model.hiddenUnits",
            f"the model would have {count:,} parameters ({count * 4 / 2**30:.1f} GiB of float32 "
            f"weights, about 4x that to train); at most {MAX_MODEL_PARAMETERS:,}: narrow the "
            f"widest layers, got {spec.model.hidden_units}",
        )


# Generated data is held in memory as float32: 2^28 values are 1 GiB (twice that normalized).
MAX_SYNTHETIC_VALUES = 2**28


def synthetic_data_bounded(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    synthetic = spec.data.synthetic
    values = synthetic.examples * synthetic.features
    if spec.data.format == "synthetic" and values > MAX_SYNTHETIC_VALUES:
        yield error(
            "spec.data.synthetic.examples",
            f"examples x features must be at most {MAX_SYNTHETIC_VALUES:,} (1 GiB of float32 "
            f"held in memory), got {synthetic.examples:,} x {synthetic.features:,} = {values:,}",
        )


def tolerations_valid(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    # Kubernetes' own pod validation, checked before the worker Job is created.
    for i, t in enumerate(spec.workers.pod_template.tolerations):
        where = f"spec.workers.podTemplate.tolerations[{i}]"
        if t.key is None and t.operator != "Exists":
            yield error(where, "a toleration without key must have operator Exists")
        if t.operator == "Exists" and t.value:
            yield error(where, f"value must be empty with operator Exists, got {t.value!r}")
        if t.toleration_seconds is not None and t.effect != "NoExecute":
            yield error(where, "tolerationSeconds only applies with effect NoExecute")


def _nested(a: str, b: str) -> bool:
    """Whether two absolute paths are the same directory or one contains the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def mount_paths_distinct(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    # Two volumes at the same (or nested) path: the apiserver refuses the pod ("must be
    # unique") or one hides the other, long after the job was accepted.
    root = spec.storage.mount_path
    if _nested(root, PARAMS_DIR):
        yield error(
            "spec.storage.mountPath",
            f"must not be {PARAMS_DIR} or a directory above or below it (the trainer's "
            f"parameters are mounted there), got {root!r}",
        )
    if root in (SCRATCH_DIR, SCRATCH_DIR + "/"):
        yield error(
            "spec.storage.mountPath",
            f"must not be {SCRATCH_DIR} (the workers' scratch space is mounted there), got {root!r}",
        )
    for i, mount in enumerate(spec.workers.pod_template.volume_mounts):
        path = mount.get("mountPath")
        if isinstance(path, str) and (
            _nested(path.rstrip("/") or "/", root)
            or path == PARAMS_DIR
            or path in (SCRATCH_DIR, SCRATCH_DIR + "/")
        ):
            yield error(
                f"spec.workers.podTemplate.volumeMounts[{i}].mountPath",
                f"must not be storage.mountPath ({root}) or a directory above or below it, nor "
                f"{PARAMS_DIR} or {SCRATCH_DIR}, got {path!r}",
            )


# ---------------------------------------------------------------------------------- warnings

ADAPTIVE_OPTIMIZERS = frozenset({"adam", "adamw", "nadam", "rmsprop", "adagrad"})
HIGH_ADAPTIVE_LR = 0.1
HIGH_SGD_LR = 1.0
SMALL_PER_REPLICA_BATCH = 8


def high_learning_rate(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    optimizer, lr = spec.training.optimizer, d.effective_learning_rate
    limit = HIGH_ADAPTIVE_LR if optimizer in ADAPTIVE_OPTIMIZERS else HIGH_SGD_LR
    if lr > limit:
        yield warning(
            "spec.training.learningRate",
            f"effective learning rate {_fmt(lr)} is above {_fmt(limit)}, which usually "
            f"diverges with {optimizer}",
        )


# The default backoffLimit is not warned about: a job that leaves restarts alone (most, and
# every example without storage) gets no warning it did nothing to cause. Asking for a
# different number of restarts without storage is what this rule catches.
_DEFAULT_BACKOFF_LIMIT = RunPolicy.model_fields["backoff_limit"].default


def restarts_without_storage(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    limit = spec.run_policy.backoff_limit
    if limit > 0 and limit != _DEFAULT_BACKOFF_LIMIT and not _has_storage(spec):
        yield warning(
            "spec.storage",
            f"runPolicy.backoffLimit is {spec.run_policy.backoff_limit} but there is no storage: "
            "checkpoints are lost, so every restart trains from scratch",
        )


def high_dropout(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    dropout = spec.training.regularization.dropout
    if dropout > 0.5:
        yield warning(
            "spec.training.regularization.dropout",
            f"{_fmt(dropout)} drops most activations; values above 0.5 usually underfit",
        )


def large_validation_split(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    split = spec.data.validation_split
    if split > 0.5:
        yield warning(
            "spec.data.validationSplit",
            f"{_fmt(split)} holds out most of the data; the model trains on the smaller part",
        )


def small_per_replica_batch(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    if d.per_replica_batch_size < SMALL_PER_REPLICA_BATCH and d.replicas_in_sync > 1:
        yield warning(
            "spec.training.batchSize",
            f"each of the {d.replicas_in_sync} replicas gets {d.per_replica_batch_size} "
            "examples per step; synchronization will dominate, raise batchSize",
        )


def float16_on_cpu(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    if spec.training.precision == "mixed-float16" and spec.workers.gpus_per_worker == 0:
        yield warning(
            "spec.training.precision",
            "mixed-float16 with workers.gpusPerWorker 0: CPUs gain nothing from float16 and "
            "train slower; use float32",
        )


def unsharded_workers(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    if spec.data.shard_policy == "off" and spec.workers.replicas > 1:
        yield warning(
            "spec.data.shardPolicy",
            f"off with {spec.workers.replicas} workers: every worker reads every example, so "
            "each epoch sees the data that many times",
        )


def checkpoint_after_training(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    if spec.checkpoint.frequency > spec.training.epochs:
        yield warning(
            "spec.checkpoint.frequency",
            f"{spec.checkpoint.frequency} epochs is longer than training "
            f"({spec.training.epochs} epochs): no checkpoint to resume from after a failure",
        )


def ignored_data_path(spec: TFTrainingJobSpec, d: Derived) -> Iterator[Problem]:
    if spec.data.format == "synthetic" and spec.data.path is not None:
        yield warning("spec.data.path", "ignored with format synthetic")


def _has_storage(spec: TFTrainingJobSpec) -> bool:
    return spec.storage.claim_name is not None or spec.storage.size is not None


RULES: tuple[Rule, ...] = (
    batch_size_divisible_by_replicas,
    warmup_shorter_than_training,
    metrics_fit_task,
    loss_fits_task,
    label_smoothing_needs_crossentropy,
    optimizer_params_fit_optimizer,
    schedule_fields_fit_type,
    min_learning_rate_below_effective,
    data_path_required,
    tfrecord_needs_num_features,
    validation_path_excludes_split,
    output_units_fit_task,
    storage_claim_or_size,
    tensorboard_needs_storage,
    priority_class_consistent,
    env_value_or_value_from,
    gpus_from_gpus_per_worker,
    requests_within_limits,
    ports_distinct,
    mount_paths_distinct,
    model_size_bounded,
    synthetic_data_bounded,
    tolerations_valid,
    # warnings
    high_learning_rate,
    restarts_without_storage,
    high_dropout,
    large_validation_split,
    small_per_replica_batch,
    float16_on_cpu,
    unsharded_workers,
    checkpoint_after_training,
    ignored_data_path,
)


def check_resolved(spec: TFTrainingJobSpec, derived: Derived) -> Iterator[Problem]:
    """Every cross-field problem of a resolved spec (resolve_spec) and its derived values."""
    for rule in RULES:
        for problem in rule(spec, derived):
            yield replace(problem, rule=rule.__name__)


def check_name(name: object) -> Iterator[Problem]:
    """metadata.name: a DNS-1035 label short enough for every child name derived from it."""
    limit = max_job_name_length()
    if name is None:
        yield error("metadata.name", "required")
    elif not isinstance(name, str):
        yield error("metadata.name", f"must be a string, got {name!r}")
    elif len(name) > limit:
        yield error(
            "metadata.name",
            f"must be at most {limit} characters (child names such as {name}-a999-1023 must "
            f"fit a 63-character DNS label), got {len(name)}",
        )
    elif not DNS_1035_LABEL.match(name):
        yield error(
            "metadata.name",
            "must be a DNS-1035 label: lower-case letters, digits and '-', starting with a "
            f"letter and ending with a letter or digit, got {name!r}",
        )
