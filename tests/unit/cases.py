"""Manifests for the unit tests: a valid base, and one failing and one passing case per rule."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


def manifest(spec: dict[str, Any] | None = None, name: str = "job") -> dict[str, Any]:
    """A TFTrainingJob; `spec` defaults to the minimal synthetic one."""
    return {
        "apiVersion": "tftj.dev/v1alpha1",
        "kind": "TFTrainingJob",
        "metadata": {"name": name},
        "spec": copy.deepcopy(spec) if spec is not None else {"data": {"format": "synthetic"}},
    }


def merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


SYNTHETIC = {"data": {"format": "synthetic"}}
CSV = {"data": {"format": "csv", "path": "data/digits.csv"}}
STORAGE = {"storage": {"size": "1Gi"}}


@dataclass(frozen=True)
class Case:
    rule: str  # the tftj.api.rules function
    path: str  # the field path the problem is reported at
    bad: dict[str, Any]  # spec patch that breaks the rule
    good: dict[str, Any]  # nearest spec patch that satisfies it
    says: str  # a fragment of the message a user must see
    severity: str = "error"
    base: dict[str, Any] = field(default_factory=lambda: SYNTHETIC)

    def manifest(self, which: str) -> dict[str, Any]:
        patch = self.bad if which == "bad" else self.good
        if self.path.startswith("metadata."):
            return manifest(self.base, name=patch["name"])
        return manifest(merged(self.base, patch))

    @property
    def id(self) -> str:
        return f"{self.rule}:{self.path}"


def _opt(optimizer: str, param: str, value: Any, good_optimizer: str) -> Case:
    return Case(
        "optimizer_params_fit_optimizer",
        f"spec.training.optimizerParams.{param}",
        {"training": {"optimizer": optimizer, "optimizerParams": {param: value}}},
        {"training": {"optimizer": good_optimizer, "optimizerParams": {param: value}}},
        "only applies to optimizer",
    )


CASES: list[Case] = [
    Case("check_name", "metadata.name", {"name": "a" * 52}, {"name": "a" * 51}, "at most 51"),
    Case("check_name", "metadata.name", {"name": "My_Job"}, {"name": "my-job"}, "DNS-1035"),
    Case("check_name", "metadata.name", {"name": "1job"}, {"name": "job1"}, "DNS-1035"),
    Case(
        "batch_size_divisible_by_replicas",
        "spec.training.batchSize",
        {"training": {"batchSize": 64}, "workers": {"replicas": 3, "gpusPerWorker": 0}},
        {"training": {"batchSize": 63}, "workers": {"replicas": 3, "gpusPerWorker": 0}},
        "divisible by replicasInSync = 3",
    ),
    Case(
        "batch_size_divisible_by_replicas",
        "spec.training.batchSize",
        {"training": {"batchSize": 60}, "workers": {"replicas": 2, "gpusPerWorker": 8}},
        {"training": {"batchSize": 64}, "workers": {"replicas": 2, "gpusPerWorker": 8}},
        "divisible by replicasInSync = 16",
    ),
    Case(
        "warmup_shorter_than_training",
        "spec.training.schedule.warmupEpochs",
        {"training": {"epochs": 5, "schedule": {"warmupEpochs": 5}}},
        {"training": {"epochs": 5, "schedule": {"warmupEpochs": 4.5}}},
        "must be less than training.epochs (5)",
        base=CSV,
    ),
    Case(
        "warmup_shorter_than_training",
        "spec.training.schedule.warmupEpochs",
        {"training": {"epochs": 3, "schedule": {"warmupEpochs": 10}}},
        {"training": {"epochs": 3, "schedule": {"warmupEpochs": 1}}},
        "must be shorter than training",
    ),
    Case(
        "metrics_fit_task",
        "spec.training.metrics",
        {"model": {"task": "regression"}, "training": {"metrics": ["loss", "accuracy"]}},
        {"model": {"task": "regression"}, "training": {"metrics": ["loss", "mae"]}},
        "accuracy needs a binary or classification task",
    ),
    Case(
        "metrics_fit_task",
        "spec.training.metrics",
        {"model": {"task": "classification"}, "training": {"metrics": ["auc"]}},
        {"model": {"task": "binary"}, "training": {"metrics": ["auc"]}},
        "auc needs a binary task",
    ),
    Case(
        "loss_fits_task",
        "spec.training.loss",
        {"model": {"task": "regression"}, "training": {"loss": "binary-crossentropy"}},
        {"model": {"task": "regression"}, "training": {"loss": "huber"}},
        "must be one of mse, mae, huber for model.task regression",
    ),
    Case(
        "label_smoothing_needs_crossentropy",
        "spec.training.labelSmoothing",
        {"model": {"task": "regression"}, "training": {"labelSmoothing": 0.1}},
        {"model": {"task": "classification"}, "training": {"labelSmoothing": 0.1}},
        "only works with a crossentropy loss",
    ),
    Case(
        "label_smoothing_needs_crossentropy",
        "spec.training.labelSmoothing",
        {"model": {"task": "binary"}, "training": {"loss": "hinge", "labelSmoothing": 0.1}},
        {"model": {"task": "binary"}, "training": {"loss": "hinge", "labelSmoothing": 0}},
        "only works with a crossentropy loss",
    ),
    _opt("adam", "momentum", 0.8, "momentum"),
    _opt("sgd", "nesterov", True, "momentum"),
    _opt("sgd", "beta1", 0.8, "adam"),
    _opt("rmsprop", "beta2", 0.99, "nadam"),
    _opt("sgd", "epsilon", 1e-6, "adagrad"),
    _opt("nadam", "amsgrad", True, "adamw"),
    _opt("adam", "weightDecay", 0.01, "adamw"),
    _opt("adam", "rho", 0.8, "rmsprop"),
    _opt("momentum", "centered", True, "rmsprop"),
    _opt("adam", "initialAccumulatorValue", 0.2, "adagrad"),
    Case(
        "schedule_fields_fit_type",
        "spec.training.schedule.decayRate",
        {"training": {"schedule": {"type": "cosine", "decayRate": 0.9}}},
        {"training": {"schedule": {"type": "exponential", "decayRate": 0.9}}},
        "only applies to schedule type exponential or step",
    ),
    Case(
        "schedule_fields_fit_type",
        "spec.training.schedule.decayEpochs",
        {"training": {"schedule": {"type": "constant", "decayEpochs": 3}}},
        {"training": {"schedule": {"type": "step", "decayEpochs": 3}}},
        "only applies to schedule type exponential or step",
    ),
    Case(
        "schedule_fields_fit_type",
        "spec.training.schedule.minLearningRate",
        {"training": {"schedule": {"type": "step", "minLearningRate": 0.0001}}},
        {"training": {"schedule": {"type": "cosine", "minLearningRate": 0.0001}}},
        "only applies to schedule type cosine",
    ),
    Case(
        "min_learning_rate_below_effective",
        "spec.training.schedule.minLearningRate",
        {
            "training": {
                "learningRate": 0.01,
                "schedule": {"type": "cosine", "minLearningRate": 0.01},
            }
        },
        {
            "training": {
                "learningRate": 0.01,
                "schedule": {"type": "cosine", "minLearningRate": 0.001},
            }
        },
        "must be below the effective learning rate 0.01",
    ),
    Case(
        "min_learning_rate_below_effective",
        "spec.training.schedule.minLearningRate",
        {
            "training": {
                "batchSize": 64,
                "learningRate": 0.01,
                "learningRateScaling": {"rule": "sqrt", "referenceBatchSize": 256},
                "schedule": {"type": "cosine", "minLearningRate": 0.006},
            }
        },
        {
            "training": {
                "batchSize": 64,
                "learningRate": 0.01,
                "learningRateScaling": {"rule": "sqrt", "referenceBatchSize": 256},
                "schedule": {"type": "cosine", "minLearningRate": 0.004},
            }
        },
        "must be below the effective learning rate 0.005",
    ),
    Case(
        "min_learning_rate_below_effective",
        "spec.training.schedule.minLearningRate",
        {
            "training": {
                "batchSize": 512,
                "learningRate": 0.01,
                "learningRateScaling": {"rule": "linear", "referenceBatchSize": 256},
                "schedule": {"type": "cosine", "minLearningRate": 0.02},
            }
        },
        {
            "training": {
                "batchSize": 512,
                "learningRate": 0.01,
                "learningRateScaling": {"rule": "linear", "referenceBatchSize": 256},
                "schedule": {"type": "cosine", "minLearningRate": 0.019},
            }
        },
        "must be below the effective learning rate 0.02",
    ),
    Case(
        "data_path_required",
        "spec.data.path",
        {"data": {"format": "npz"}},
        {"data": {"format": "npz", "path": "train.npz"}},
        "required for format npz",
    ),
    Case(
        "tfrecord_needs_num_features",
        "spec.data.numFeatures",
        {"data": {"format": "tfrecord", "path": "train-*.tfrecord"}},
        {"data": {"format": "tfrecord", "path": "train-*.tfrecord", "numFeatures": 64}},
        "required for format tfrecord",
    ),
    Case(
        "validation_path_excludes_split",
        "spec.data.validationSplit",
        {"data": {"validationPath": "data/val.csv"}},
        {"data": {"validationPath": "data/val.csv", "validationSplit": 0}},
        "must be 0 when data.validationPath is set, got 0.1",
        base=CSV,
    ),
    Case(
        "output_units_fit_task",
        "spec.model.outputUnits",
        {"model": {"task": "classification", "outputUnits": 1}},
        {"model": {"task": "classification", "outputUnits": 2}},
        "must be >= 2",
    ),
    Case(
        "output_units_fit_task",
        "spec.model.outputUnits",
        {"model": {"task": "binary", "outputUnits": 2}},
        {"model": {"task": "binary", "outputUnits": 1}},
        "must be 1 for a binary task",
    ),
    Case(
        "storage_claim_or_size",
        "spec.storage.size",
        {"storage": {"claimName": "shared", "size": "10Gi"}},
        {"storage": {"claimName": "shared"}},
        "not both",
    ),
    Case(
        "storage_claim_or_size",
        "spec.storage.storageClassName",
        {"storage": {"claimName": "shared", "storageClassName": "fast"}},
        {"storage": {"size": "10Gi", "storageClassName": "fast"}},
        "only applies with storage.size",
    ),
    Case(
        "tensorboard_needs_storage",
        "spec.tensorboard.enabled",
        {"tensorboard": {"enabled": True}},
        {"tensorboard": {"enabled": True}, "storage": {"claimName": "shared"}},
        "needs storage",
    ),
    Case(
        "priority_class_consistent",
        "spec.workers.podTemplate.priorityClassName",
        {
            "scheduling": {"priorityClassName": "a"},
            "workers": {"podTemplate": {"priorityClassName": "b"}},
        },
        {
            "scheduling": {"priorityClassName": "a"},
            "workers": {"podTemplate": {"priorityClassName": "a"}},
        },
        "set only one",
    ),
    Case(
        "env_value_or_value_from",
        "spec.workers.podTemplate.env[0]",
        {
            "workers": {
                "podTemplate": {
                    "env": [
                        {
                            "name": "A",
                            "value": "1",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        }
                    ]
                }
            }
        },
        {
            "workers": {
                "podTemplate": {
                    "env": [
                        {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                    ]
                }
            }
        },
        "set value or valueFrom, not both",
    ),
    Case(
        "gpus_from_gpus_per_worker",
        "spec.workers.resources.requests",
        {"workers": {"resources": {"requests": {"cpu": "1", "nvidia.com/gpu": "1"}}}},
        {"workers": {"resources": {"requests": {"cpu": "1"}}, "gpusPerWorker": 1}},
        "set workers.gpusPerWorker instead",
    ),
    Case(
        "gpus_from_gpus_per_worker",
        "spec.workers.resources.limits",
        {"workers": {"resources": {"limits": {"nvidia.com/gpu": "2"}}}},
        {"workers": {"resources": {"limits": {"memory": "8Gi"}}, "gpusPerWorker": 2}},
        "set workers.gpusPerWorker instead",
    ),
    Case(
        "requests_within_limits",
        "spec.workers.resources.requests.memory",
        {"workers": {"resources": {"requests": {"memory": "16Gi"}, "limits": {"memory": "8Gi"}}}},
        {"workers": {"resources": {"requests": {"memory": "8Gi"}, "limits": {"memory": "8Gi"}}}},
        "must not exceed limits.memory (8Gi), got 16Gi",
    ),
    Case(
        "ports_distinct",
        "spec.metrics.port",
        {"metrics": {"port": 2222}},
        {"metrics": {"port": 2223}},
        "must differ from workers.port",
    ),
    Case(
        "model_size_bounded",
        "spec.model.hiddenUnits",
        {"model": {"hiddenUnits": [65536, 65536]}},
        {"model": {"hiddenUnits": [8192, 8192]}},
        "parameters",
    ),
    Case(
        "synthetic_data_bounded",
        "spec.data.synthetic.examples",
        {"data": {"synthetic": {"examples": 10_000_000, "features": 100}}},
        {"data": {"synthetic": {"examples": 2_000_000, "features": 100}}},
        "at most 268,435,456",
    ),
    Case(
        "tolerations_valid",
        "spec.workers.podTemplate.tolerations[0]",
        {"workers": {"podTemplate": {"tolerations": [{"operator": "Equal", "value": "x"}]}}},
        {"workers": {"podTemplate": {"tolerations": [{"operator": "Exists"}]}}},
        "without key",
    ),
    Case(
        "tolerations_valid",
        "spec.workers.podTemplate.tolerations[0]",
        {
            "workers": {
                "podTemplate": {"tolerations": [{"key": "k", "operator": "Exists", "value": "x"}]}
            }
        },
        {"workers": {"podTemplate": {"tolerations": [{"key": "k", "operator": "Exists"}]}}},
        "must be empty",
    ),
    Case(
        "tolerations_valid",
        "spec.workers.podTemplate.tolerations[0]",
        {"workers": {"podTemplate": {"tolerations": [{"key": "k", "tolerationSeconds": 60}]}}},
        {
            "workers": {
                "podTemplate": {
                    "tolerations": [{"key": "k", "effect": "NoExecute", "tolerationSeconds": 60}]
                }
            }
        },
        "NoExecute",
    ),
    Case(
        "mount_paths_distinct",
        "spec.storage.mountPath",
        {"storage": {"mountPath": "/etc"}},
        {"storage": {"mountPath": "/etc/data"}},
        "must not be /etc/tftj",
    ),
    Case(
        "mount_paths_distinct",
        "spec.workers.podTemplate.volumeMounts[0].mountPath",
        {"workers": {"podTemplate": {"volumeMounts": [{"name": "v", "mountPath": "/storage/x"}]}}},
        {"workers": {"podTemplate": {"volumeMounts": [{"name": "v", "mountPath": "/storagex"}]}}},
        "must not be storage.mountPath",
    ),
    Case(
        "mount_paths_distinct",
        "spec.storage.mountPath",
        {"storage": {"mountPath": "/tmp"}},
        {"storage": {"mountPath": "/tmp/storage"}},
        "must not be /tmp",
    ),
    Case(
        "mount_paths_distinct",
        "spec.workers.podTemplate.volumeMounts[0].mountPath",
        {"workers": {"podTemplate": {"volumeMounts": [{"name": "v", "mountPath": "/tmp/"}]}}},
        {"workers": {"podTemplate": {"volumeMounts": [{"name": "v", "mountPath": "/tmp/x"}]}}},
        "nor /etc/tftj or /tmp",
    ),
    # ------------------------------------------------------------------------------ warnings
    Case(
        "high_learning_rate",
        "spec.training.learningRate",
        {"training": {"optimizer": "adam", "learningRate": 0.5}},
        {"training": {"optimizer": "sgd", "learningRate": 0.5}},
        "usually diverges with adam",
        severity="warning",
    ),
    Case(
        "high_learning_rate",
        "spec.training.learningRate",
        {"training": {"optimizer": "sgd", "learningRate": 2}},
        {"training": {"optimizer": "sgd", "learningRate": 1}},
        "usually diverges with sgd",
        severity="warning",
    ),
    Case(
        "restarts_without_storage",
        "spec.storage",
        {"runPolicy": {"backoffLimit": 2}},
        {"runPolicy": {"backoffLimit": 0}},
        "every restart trains from scratch",
        severity="warning",
    ),
    Case(
        "high_dropout",
        "spec.training.regularization.dropout",
        {"training": {"regularization": {"dropout": 0.7}}},
        {"training": {"regularization": {"dropout": 0.5}}},
        "usually underfit",
        severity="warning",
    ),
    Case(
        "large_validation_split",
        "spec.data.validationSplit",
        {"data": {"validationSplit": 0.6}},
        {"data": {"validationSplit": 0.2}},
        "holds out most of the data",
        severity="warning",
    ),
    Case(
        "small_per_replica_batch",
        "spec.training.batchSize",
        {"training": {"batchSize": 16}, "workers": {"replicas": 4}},
        {"training": {"batchSize": 32}, "workers": {"replicas": 4}},
        "gets 4 examples per step",
        severity="warning",
    ),
    Case(
        "float16_on_cpu",
        "spec.training.precision",
        {"training": {"precision": "mixed-float16"}, "workers": {"gpusPerWorker": 0}},
        {"training": {"precision": "mixed-float16"}, "workers": {"gpusPerWorker": 1}},
        "use float32",
        severity="warning",
    ),
    Case(
        "unsharded_workers",
        "spec.data.shardPolicy",
        {"data": {"shardPolicy": "off"}, "workers": {"replicas": 2}},
        {"data": {"shardPolicy": "auto"}, "workers": {"replicas": 2}},
        "every worker reads every example",
        severity="warning",
    ),
    Case(
        "checkpoint_after_training",
        "spec.checkpoint.frequency",
        {"checkpoint": {"frequency": 20}, "training": {"epochs": 10}},
        {"checkpoint": {"frequency": 10}, "training": {"epochs": 10}},
        "no checkpoint to resume from",
        severity="warning",
    ),
    Case(
        "ignored_data_path",
        "spec.data.path",
        {"data": {"path": "x.csv"}},
        {"data": {}},
        "ignored with format synthetic",
        severity="warning",
    ),
]
