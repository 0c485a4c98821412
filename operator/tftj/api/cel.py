"""The cross-field rules CEL can express, as CRD `x-kubernetes-validations`.

The apiserver runs these on every create/update, so a bad manifest is refused even when the
webhook is down or bypassed; tftj.api.rules holds the same rules in Python (plus those CEL cannot
express, and the warnings). Each CelRule names the Python rule it mirrors, and a unit test
evaluates both on the same cases. Expressions are built from the same tables the Python rules
use (METRIC_TASKS, LOSS_TASKS, OPTIMIZERS_FOR_PARAM, ...), so the two cannot drift apart.

The CRD has no `default:`s (the spec is stored as written, see tftj.api.crd), so any field but
the required ones may be absent. Rules are written as if every defaulted field were present;
`expression` rewrites each `self.a.b` that may be absent into `(has(self.a) && has(self.a.b) ?
self.a.b : <the default>)` and each `has(self.a.b)` into `has(self.a) && has(self.a.b)`, both
from the schema, so a rule reads a field's default exactly where resolve() would fill it. Every
expression is constant-cost or iterates a list with maxItems, well inside the apiserver's cost
budget.

The apiserver runs the rules even when a field they read already failed its own schema range
(a minimum is not a "blocking" error), so `workers.replicas: 0` would also fail the batch rule
with "modulus by zero evaluating rule". Every rule is therefore guarded: it holds vacuously
while an integer it reads is outside its schema range (the range error is reported anyway).
The guard is derived from the schema, so a new rule or range needs no hand-written guard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tftj.api.contract import PARAMS_DIR, SCRATCH_DIR
from tftj.api.errors import format_loc
from tftj.api.naming import max_job_name_length
from tftj.api.resolve import DEFAULT_LOSS
from tftj.api.rules import (
    CROSSENTROPY_LOSSES,
    DNS_1035_LABEL,
    GPU_RESOURCE,
    LOSS_TASKS,
    MAX_SYNTHETIC_VALUES,
    METRIC_TASKS,
    OPTIMIZERS_FOR_PARAM,
    SCHEDULE_DEFAULTS,
    SCHEDULE_FIELD_TYPES,
)
from tftj.api.schema import Schema, child, schema_at

ITEMS = "[]"  # in CelRule.at: the items of the list above


_OPERAND = re.compile(r"\bself((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


@dataclass(frozen=True)
class CelRule:
    rule: str  # the tftj.api.rules function (or check_name) this mirrors
    at: tuple[str, ...]  # where the rule sits in the CRD schema: () is the root, "[]" list items
    check: str  # the condition itself; `expression` is what the CRD gets (guarded)
    message: str
    field_path: str | None = None  # relative to `at`, e.g. ".batchSize"

    @property
    def expression(self) -> str:
        guard = in_range_guard(self.at, self.check)
        return with_defaults(self.at, f"!({guard}) || ({self.check})" if guard else self.check)

    @property
    def reported_path(self) -> str:
        """The path the apiserver (and validate()) reports, e.g. spec.training.batchSize."""
        path = format_loc([0 if key == ITEMS else key for key in self.at])
        tail = (self.field_path or "").lstrip(".")
        return f"{path}.{tail}" if path and tail else (path or tail)


_FIELDS = r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+"
# `has(self.a.b)`, or a plain `self.a.b` (possibly followed by a method: `.all(`, `.startsWith(`).
_REFERENCE = re.compile(rf"\bhas\(self(?P<tested>{_FIELDS})\)|\bself(?P<path>{_FIELDS})")


def _cel_literal(value: Any, schema: Schema) -> str:
    """A default as a CEL literal of the schema's type (CEL never mixes int and double)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if schema.get("type") == "number":
        return repr(float(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        assert "'" not in value, value
        return f"'{value}'"
    if isinstance(value, dict):
        inner = ", ".join(f"'{k}': {_cel_literal(v, {})}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_cel_literal(v, schema.get("items", {})) for v in value) + "]"
    raise AssertionError(f"no CEL literal for {value!r}")


def _rewrite(base: list[str | int], match: re.Match[str]) -> str:
    names = (match["tested"] or match["path"]).lstrip(".").split(".")
    # The schema fields the reference selects (a method name ends them), and the has() tests
    # that make each optional one safe to select.
    fields: list[str] = []
    tests: list[str] = []
    node = schema_at(base)
    for name in names:
        if node is None or "properties" not in node:
            break
        parent, node = node, child(node, name)
        if node is None:
            break
        fields.append(name)
        if name not in parent.get("required", []):
            tests.append(f"has(self.{'.'.join(fields)})")
    ref = "self" + "".join(f".{name}" for name in fields)
    if match["tested"]:
        return f"({' && '.join(tests)})" if len(tests) > 1 else match[0]
    if not tests or node is None or "default" not in node:
        return match[0]  # always present, or the rule itself has() it first
    tail = "".join(f".{name}" for name in names[len(fields) :])
    present = " && ".join(tests)
    present = f"({present})" if len(tests) > 1 else present
    return f"({present} ? {ref} : {_cel_literal(node['default'], node)}){tail}"


def with_defaults(at: tuple[str, ...], expression: str) -> str:
    """`expression` with every selection of a field that may be absent made safe (see above)."""
    base: list[str | int] = [0 if key == ITEMS else key for key in at]
    return _REFERENCE.sub(lambda match: _rewrite(base, match), expression)


def integer_operands(at: tuple[str, ...], check: str) -> list[tuple[str, Schema]]:
    """The integer fields `check` reads (as `self.a.b`), with their schemas."""
    base: list[str | int] = [0 if key == ITEMS else key for key in at]
    found: dict[str, Schema] = {}
    for match in _OPERAND.finditer(check):
        path = match[1].lstrip(".").split(".")
        field = schema_at([*base, *path])
        if field is not None and field.get("type") == "integer":
            found.setdefault(match[1], field)
    return list(found.items())


def _bounds(ref: str, field: Schema) -> list[str]:
    out = []
    for key, op in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in field:
            out.append(f"self{ref} {op} {int(field[key])}")
    return out


def in_range_guard(at: tuple[str, ...], check: str) -> str:
    """`self.x >= 1 && self.x <= 1024 && ...` over the integers `check` reads; "" if none."""
    parts = []
    for ref, field in integer_operands(at, check):
        bounds = " && ".join(_bounds(ref, field))
        if not bounds:
            continue
        # Fields without a default may be absent: absent is in range (the check has() them).
        parts.append(bounds if "default" in field else f"(!has(self{ref}) || ({bounds}))")
    return " && ".join(parts)


def _list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in sorted(values)) + "]"


def _by_task(table: dict[str, frozenset[str]], var: str, task: str) -> str:
    """`(task == 'a' && var in [...]) || ...` from a name -> tasks table."""
    tasks = sorted({t for ts in table.values() for t in ts})
    parts = [
        f"({task} == '{t}' && {var} in {_list(n for n, ts in table.items() if t in ts)})"
        for t in tasks
    ]
    return " || ".join(parts)


def _cel_number(x: float) -> str:
    return repr(float(x))


def _optimizer_param_rules() -> list[CelRule]:
    return [
        CelRule(
            "optimizer_params_fit_optimizer",
            ("spec", "training"),
            f"!has(self.optimizerParams.{param}) || self.optimizer in {_list(optimizers)}",
            f"optimizerParams.{param} only applies to optimizer {' or '.join(optimizers)}",
            f".optimizerParams.{param}",
        )
        for param, optimizers in OPTIMIZERS_FOR_PARAM.items()
    ]


def _schedule_field_rules() -> list[CelRule]:
    return [
        CelRule(
            "schedule_fields_fit_type",
            ("spec", "training", "schedule"),
            f"self.type in {_list(types)} || self.{alias} == {_cel_number(SCHEDULE_DEFAULTS[alias])}",
            f"schedule.{alias} only applies to schedule type {' or '.join(sorted(types))}",
            f".{alias}",
        )
        for alias, (_, types) in SCHEDULE_FIELD_TYPES.items()
    ]


_CE_DEFAULT_TASKS = [task for task, loss in DEFAULT_LOSS.items() if loss in CROSSENTROPY_LOSSES]
_NAME_LIMIT = max_job_name_length()

CEL_RULES: tuple[CelRule, ...] = (
    CelRule(
        "check_name",
        (),
        f"!has(self.metadata.name) || size(self.metadata.name) <= {_NAME_LIMIT}",
        f"metadata.name must be at most {_NAME_LIMIT} characters so that every child name "
        "(e.g. <name>-a999-1023) fits a 63-character DNS label",
        ".metadata.name",
    ),
    CelRule(
        "check_name",
        (),
        f"!has(self.metadata.name) || self.metadata.name.matches('{DNS_1035_LABEL.pattern}')",
        "metadata.name must be a DNS-1035 label: lower-case letters, digits and '-', starting "
        "with a letter and ending with a letter or digit",
        ".metadata.name",
    ),
    CelRule(
        "batch_size_divisible_by_replicas",
        ("spec",),
        "self.training.batchSize % (self.workers.replicas * "
        "(self.workers.gpusPerWorker > 0 ? self.workers.gpusPerWorker : 1)) == 0",
        "training.batchSize (global) must be divisible by replicasInSync = workers.replicas x "
        "max(1, workers.gpusPerWorker)",
        ".training.batchSize",
    ),
    CelRule(
        "warmup_shorter_than_training",
        ("spec", "training"),
        "self.schedule.warmupEpochs < double(self.epochs)",
        "schedule.warmupEpochs must be less than epochs",
        ".schedule.warmupEpochs",
    ),
    CelRule(
        "metrics_fit_task",
        ("spec",),
        "!has(self.training.metrics) || self.training.metrics.all(m, "
        + _by_task(METRIC_TASKS, "m", "self.model.task")
        + ")",
        "training.metrics must fit model.task: accuracy needs classification or binary, "
        "top-5-accuracy classification, auc/precision/recall binary, mae/mse/rmse regression",
        ".training.metrics",
    ),
    CelRule(
        "loss_fits_task",
        ("spec",),
        "!has(self.training.loss) || "
        + _by_task(LOSS_TASKS, "self.training.loss", "self.model.task"),
        "training.loss must fit model.task: classification takes sparse-categorical-"
        "crossentropy or categorical-crossentropy, binary binary-crossentropy or hinge, "
        "regression mse, mae or huber",
        ".training.loss",
    ),
    CelRule(
        "label_smoothing_needs_crossentropy",
        ("spec",),
        "self.training.labelSmoothing == 0.0 || (has(self.training.loss) ? "
        f"self.training.loss in {_list(CROSSENTROPY_LOSSES)} : "
        f"self.model.task in {_list(_CE_DEFAULT_TASKS)})",
        "training.labelSmoothing only works with a crossentropy loss",
        ".training.labelSmoothing",
    ),
    *_optimizer_param_rules(),
    *_schedule_field_rules(),
    CelRule(
        "min_learning_rate_below_effective",
        ("spec", "training"),
        # sqrt scaling compared squared: CEL has no sqrt, and both sides are non-negative.
        "self.schedule.type != 'cosine' || (self.learningRateScaling.rule == 'sqrt' ? "
        "self.schedule.minLearningRate * self.schedule.minLearningRate * "
        "double(self.learningRateScaling.referenceBatchSize) < "
        "self.learningRate * self.learningRate * double(self.batchSize) : "
        "self.schedule.minLearningRate < self.learningRate * "
        "(self.learningRateScaling.rule == 'linear' ? "
        "double(self.batchSize) / double(self.learningRateScaling.referenceBatchSize) : 1.0))",
        "schedule.minLearningRate must be below the effective learning rate",
        ".schedule.minLearningRate",
    ),
    CelRule(
        "data_path_required",
        ("spec", "data"),
        "self.format == 'synthetic' || has(self.path)",
        "data.path is required for formats csv, tfrecord and npz",
        ".path",
    ),
    CelRule(
        "tfrecord_needs_num_features",
        ("spec", "data"),
        "self.format != 'tfrecord' || has(self.numFeatures)",
        "data.numFeatures is required for format tfrecord",
        ".numFeatures",
    ),
    CelRule(
        "validation_path_excludes_split",
        ("spec", "data"),
        "!has(self.validationPath) || self.validationSplit == 0.0",
        "data.validationSplit must be 0 when data.validationPath is set",
        ".validationSplit",
    ),
    CelRule(
        "output_units_fit_task",
        ("spec", "model"),
        "!has(self.outputUnits) || (self.task == 'classification' ? self.outputUnits >= 2 : "
        "(self.task == 'binary' ? self.outputUnits == 1 : true))",
        "model.outputUnits must be >= 2 for classification and 1 for binary",
        ".outputUnits",
    ),
    CelRule(
        "storage_claim_or_size",
        ("spec", "storage"),
        "!(has(self.claimName) && has(self.size))",
        "set storage.claimName or storage.size, not both",
        ".size",
    ),
    CelRule(
        "storage_claim_or_size",
        ("spec", "storage"),
        "has(self.size) || !has(self.storageClassName)",
        "storage.storageClassName only applies with storage.size",
        ".storageClassName",
    ),
    CelRule(
        "tensorboard_needs_storage",
        ("spec",),
        "!self.tensorboard.enabled || has(self.storage.claimName) || has(self.storage.size)",
        "tensorboard.enabled needs storage (storage.claimName or storage.size)",
        ".tensorboard.enabled",
    ),
    CelRule(
        "priority_class_consistent",
        ("spec",),
        "!has(self.scheduling.priorityClassName) || "
        "!has(self.workers.podTemplate.priorityClassName) || "
        "self.scheduling.priorityClassName == self.workers.podTemplate.priorityClassName",
        "workers.podTemplate.priorityClassName differs from scheduling.priorityClassName; "
        "set only one",
        ".workers.podTemplate.priorityClassName",
    ),
    CelRule(
        "env_value_or_value_from",
        ("spec", "workers", "podTemplate", "env", ITEMS),
        "!(has(self.value) && has(self.valueFrom))",
        "set value or valueFrom, not both",
    ),
    CelRule(
        "gpus_from_gpus_per_worker",
        ("spec", "workers", "resources"),
        f"!('{GPU_RESOURCE}' in self.requests)",
        f"resources.requests must not list {GPU_RESOURCE}; set workers.gpusPerWorker",
        ".requests",
    ),
    CelRule(
        "gpus_from_gpus_per_worker",
        ("spec", "workers", "resources"),
        f"!('{GPU_RESOURCE}' in self.limits)",
        f"resources.limits must not list {GPU_RESOURCE}; set workers.gpusPerWorker",
        ".limits",
    ),
    CelRule(
        "ports_distinct",
        ("spec",),
        "self.metrics.port != self.workers.port",
        "metrics.port must differ from workers.port",
        ".metrics.port",
    ),
    CelRule(
        "synthetic_data_bounded",
        ("spec", "data"),
        "self.format != 'synthetic' || "
        f"self.synthetic.examples * self.synthetic.features <= {MAX_SYNTHETIC_VALUES}",
        f"data.synthetic.examples x features must be at most {MAX_SYNTHETIC_VALUES}",
        ".synthetic.examples",
    ),
    CelRule(
        "tolerations_valid",
        ("spec", "workers", "podTemplate", "tolerations", ITEMS),
        "has(self.key) || (has(self.operator) && self.operator == 'Exists')",
        "a toleration without key must have operator Exists",
    ),
    CelRule(
        "tolerations_valid",
        ("spec", "workers", "podTemplate", "tolerations", ITEMS),
        "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
        "value must be empty with operator Exists",
    ),
    CelRule(
        "tolerations_valid",
        ("spec", "workers", "podTemplate", "tolerations", ITEMS),
        "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
        "tolerationSeconds only applies with effect NoExecute",
    ),
    CelRule(
        "mount_paths_distinct",
        ("spec", "storage"),
        f"self.mountPath != '{PARAMS_DIR}' && !self.mountPath.startsWith('{PARAMS_DIR}/') && "
        f"!'{PARAMS_DIR}'.startsWith(self.mountPath + '/')",
        f"storage.mountPath must not be {PARAMS_DIR} or a directory above or below it",
        ".mountPath",
    ),
    CelRule(
        "mount_paths_distinct",
        ("spec", "storage"),
        f"self.mountPath != '{SCRATCH_DIR}' && self.mountPath != '{SCRATCH_DIR}/'",
        f"storage.mountPath must not be {SCRATCH_DIR} (the workers' scratch space)",
        ".mountPath",
    ),
)
