"""Every schema field has an effect: changing it changes what the trainer builds.

The test walks the schema, so a field added to tftj.api.models without wiring (or without an
entry below saying why the trainer ignores it) fails here. "What is built" is everything
prepare() produces (model config, optimizer and schedule config, loss, metrics, the first data
batches and the pipeline's stages), the callbacks, the storage paths, the log levels, the
metrics port and the start-up checks of the worker group.
"""

from __future__ import annotations

import hashlib
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel
from tftj.api.models import TFTrainingJobSpec
from tftj.api.resolve import resolve

from tests.trainer.conftest import merged, small_spec, train_alone

# Fields the trainer does not read, and who does.
NOT_TRAINER: dict[str, str] = {
    **{
        f"workers.{f}": "operator: pod template"
        for f in ("image", "imagePullPolicy", "resources.requests", "resources.limits")
    },
    "workers.port": "operator: builds TFTJ_WORKER_HOSTS from it",
    **{
        f"workers.podTemplate.{f}": "operator: pod template"
        for f in (
            "labels",
            "annotations",
            "nodeSelector",
            "tolerations",
            "affinity",
            "env",
            "volumes",
            "volumeMounts",
            "serviceAccountName",
            "priorityClassName",
        )
    },
    **{
        f"storage.{f}": "operator: the PersistentVolumeClaim"
        for f in ("claimName", "size", "storageClassName")
    },
    **{
        f"runPolicy.{f}": "operator (and tftj run): restarts, deadline, clean-up"
        for f in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "suspend")
    },
    **{
        f"scheduling.{f}": "operator: Kueue and scheduler"
        for f in ("queueName", "priorityClassName", "schedulerName")
    },
    **{f"tensorboard.{f}": "operator: the TensorBoard Deployment" for f in ("enabled", "image")},
}
# Fields whose effect is a behaviour at the end of training, tested by running it.
BEHAVIOUR: dict[str, str] = {
    "export.enabled": "test_export_enabled_decides_whether_a_model_is_exported",
}


DATA_FILES = ("a.csv", "b.csv", "d.npz")


def write_data_files(tmp: Path) -> None:
    csv_file(tmp / "a.csv", 1)
    csv_file(tmp / "b.csv", 2)
    npz_file(tmp / "d.npz")


def csv_file(path: Path, seed: int) -> str:
    rng = np.random.default_rng(seed)
    rows = ["f1,f2,f3,label,target"]
    for _ in range(60):
        f = rng.normal(size=3)
        rows.append(f"{f[0]:.4f},{f[1]:.4f},{f[2]:.4f},{rng.integers(10)},{rng.integers(10)}")
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def npz_file(path: Path) -> str:
    rng = np.random.default_rng(3)
    np.savez(
        path,
        features=rng.normal(size=(60, 3)),
        other=rng.normal(size=(60, 3)),
        label=rng.integers(10, size=60),
    )
    return str(path)


def alternatives(tmp: Path) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """field -> (base patch, changed patch): the same spec but for that field."""
    a, b, npz = (str(tmp / name) for name in DATA_FILES)
    csv = {"data": {"format": "csv", "path": a}}

    def on(base: dict[str, Any], change: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return base, merged(base, change)

    def opt(name: str, **params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return on({"training": {"optimizer": name}}, {"training": {"optimizerParams": params}})

    def sched(kind: str, **values: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return on({"training": {"schedule": {"type": kind}}}, {"training": {"schedule": values}})

    def t(**values: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {"training": values}

    return {
        "training.batchSize": t(batchSize=32),
        "training.epochs": t(epochs=5),
        "training.stepsPerEpoch": t(stepsPerEpoch=3),
        "training.learningRate": t(learningRate=0.01),
        "training.learningRateScaling.rule": t(learningRateScaling={"rule": "linear"}),
        "training.learningRateScaling.referenceBatchSize": on(
            {"training": {"learningRateScaling": {"rule": "linear"}}},
            {"training": {"learningRateScaling": {"referenceBatchSize": 128}}},
        ),
        "training.optimizer": t(optimizer="sgd"),
        "training.optimizerParams.momentum": opt("momentum", momentum=0.5),
        "training.optimizerParams.nesterov": opt("momentum", nesterov=True),
        "training.optimizerParams.beta1": opt("adam", beta1=0.8),
        "training.optimizerParams.beta2": opt("adam", beta2=0.99),
        "training.optimizerParams.epsilon": opt("adam", epsilon=1e-5),
        "training.optimizerParams.amsgrad": opt("adam", amsgrad=True),
        "training.optimizerParams.weightDecay": opt("adamw", weightDecay=0.01),
        "training.optimizerParams.rho": opt("rmsprop", rho=0.8),
        "training.optimizerParams.centered": opt("rmsprop", centered=True),
        "training.optimizerParams.initialAccumulatorValue": opt(
            "adagrad", initialAccumulatorValue=0.5
        ),
        "training.schedule.type": t(schedule={"type": "cosine"}),
        "training.schedule.warmupEpochs": t(schedule={"warmupEpochs": 1.0}),
        "training.schedule.decayRate": sched("exponential", decayRate=0.9),
        "training.schedule.decayEpochs": sched("step", decayEpochs=2.0),
        "training.schedule.minLearningRate": sched("cosine", minLearningRate=0.0001),
        "training.loss": t(loss="categorical-crossentropy"),
        "training.labelSmoothing": t(labelSmoothing=0.1),
        "training.regularization.l1": t(regularization={"l1": 0.01}),
        "training.regularization.l2": t(regularization={"l2": 0.01}),
        "training.regularization.dropout": t(regularization={"dropout": 0.2}),
        "training.metrics": t(metrics=["loss", "accuracy", "top-5-accuracy"]),
        "training.gradientClipNorm": t(gradientClipNorm=1.0),
        "training.precision": t(precision="mixed-float16"),
        "training.seed": t(seed=7),
        "training.stepsPerExecution": t(stepsPerExecution=4),
        "model.task": ({}, {"model": {"task": "binary"}}),
        "model.outputUnits": ({}, {"model": {"outputUnits": 5}}),
        "model.hiddenUnits": ({}, {"model": {"hiddenUnits": [8, 8]}}),
        "model.activation": ({}, {"model": {"activation": "leaky-relu"}}),
        "model.batchNormalization": ({}, {"model": {"batchNormalization": True}}),
        "model.kernelInitializer": ({}, {"model": {"kernelInitializer": "he-normal"}}),
        "model.builder": ({}, {"model": {"builder": "tests.trainer.custom_model:build"}}),
        "data.format": ({}, csv),
        "data.path": on(csv, {"data": {"path": b}}),
        "data.validationPath": on(csv, {"data": {"validationPath": b, "validationSplit": 0.0}}),
        "data.validationSplit": ({}, {"data": {"validationSplit": 0.3}}),
        "data.labelKey": on(csv, {"data": {"labelKey": "target"}}),
        "data.featuresKey": on(
            {"data": {"format": "npz", "path": npz}}, {"data": {"featuresKey": "other"}}
        ),
        "data.numFeatures": on(
            merged(csv, {"data": {"numFeatures": 4}}), {"data": {"numFeatures": 5}}
        ),
        "data.synthetic.examples": ({}, {"data": {"synthetic": {"examples": 512}}}),
        "data.synthetic.features": ({}, {"data": {"synthetic": {"features": 4}}}),
        "data.synthetic.noise": ({}, {"data": {"synthetic": {"noise": 1.0}}}),
        "data.preprocess.normalization": (
            {},
            {"data": {"preprocess": {"normalization": "min-max"}}},
        ),
        "data.shuffle": ({}, {"data": {"shuffle": False}}),
        "data.shuffleBuffer": ({}, {"data": {"shuffleBuffer": 8}}),
        "data.cache": ({}, {"data": {"cache": True}}),
        "data.compression": on(csv, {"data": {"compression": "gzip"}}),
        "data.shardPolicy": ({}, {"data": {"shardPolicy": "off"}}),
        "logging.frequency": ({}, {"logging": {"frequency": 50}}),
        "logging.directory": ({}, {"logging": {"directory": "tb"}}),
        "logging.level": ({}, {"logging": {"level": "debug"}}),
        "workers.replicas": ({}, {"workers": {"replicas": 2}}),
        "workers.gpusPerWorker": ({}, {"workers": {"gpusPerWorker": 1}}),
        "storage.mountPath": ({}, {"storage": {"mountPath": "/elsewhere"}}),
        "checkpoint.frequency": ({}, {"checkpoint": {"frequency": 2}}),
        "checkpoint.maxToKeep": ({}, {"checkpoint": {"maxToKeep": 1}}),
        "checkpoint.directory": ({}, {"checkpoint": {"directory": "ckpt"}}),
        "export.directory": ({}, {"export": {"directory": "saved"}}),
        "metrics.port": ({}, {"metrics": {"port": 9500}}),
    }


def schema_fields(model: type[BaseModel] = TFTrainingJobSpec, prefix: str = "") -> list[str]:
    """Every leaf field of the spec by its camelCase path."""
    found = []
    for name, field in model.model_fields.items():
        path = prefix + (field.alias or name)
        inner = [
            a
            for a in (typing.get_args(field.annotation) or (field.annotation,))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if inner and typing.get_origin(field.annotation) not in (list, dict):
            found.extend(schema_fields(inner[0], path + "."))
        else:
            found.append(path)
    return found


def pipeline_stages(dataset: Any) -> list[str]:
    stages = []
    while dataset is not None:
        stages.append(type(dataset).__name__)
        dataset = getattr(dataset, "_input_dataset", None)
    return stages


def batches_digest(dataset: Any, count: int = 2) -> str:
    digest = hashlib.sha256()
    for x, y in dataset.take(count):
        digest.update(x.numpy().tobytes())
        digest.update(y.numpy().tobytes())
    return digest.hexdigest()


def describe_loss(loss: Any) -> Any:
    if hasattr(loss, "get_config"):
        return (type(loss).__name__, loss.get_config())
    return (loss.__name__, [c.cell_contents for c in loss.__closure__ or ()])


def built(patch: dict[str, Any], storage: Path) -> dict[str, Any]:
    """Everything the trainer builds from SMALL_SPEC + patch (or the error it stops with)."""
    import tensorflow as tf
    from tftj_trainer.callbacks import StopOnSignal
    from tftj_trainer.checkpointing import Checkpoints
    from tftj_trainer.cluster import Cluster, group_problems
    from tftj_trainer.config import log_levels, metrics_port, storage_paths
    from tftj_trainer.exitcodes import TrainerError
    from tftj_trainer.metrics import TrainerMetrics
    from tftj_trainer.training import dataset_fn, make_callbacks, prepare

    spec = TFTrainingJobSpec.model_validate(small_spec(patch))
    params = resolve(spec, name="wired")
    lone = Cluster(workers=(), index=0)
    described: dict[str, Any] = {
        "paths": storage_paths(params, None),
        "log levels": log_levels(spec.logging.level),
        "metrics port": metrics_port(params, None),
        "group": group_problems(params, lone, visible_gpus=0),
    }
    try:
        p = prepare(params, lone, tf.distribute.get_strategy())
    except TrainerError as error:
        return {**described, "error": error.message}
    model = p.model
    optimizer = model.optimizer
    if hasattr(optimizer, "inner_optimizer"):  # mixed_float16 wraps it in a loss scaler
        optimizer = optimizer.inner_optimizer
    checkpoints = Checkpoints(
        model, storage / "ckpt", is_chief=True, worker=0, max_to_keep=spec.checkpoint.max_to_keep
    )
    callbacks = make_callbacks(
        params, p, TrainerMetrics("wired", 0), None, checkpoints, StopOnSignal()
    )
    two_workers = dataset_fn(
        p.input.train,
        params,
        training=True,
        policy=p.shard_policy
        if p.shard_policy != "off"
        else spec.data.shard_policy.replace("auto", "data"),
    )
    try:
        second_worker = batches_digest(two_workers(tf.distribute.InputContext(2, 1, 2)))
    except TrainerError as error:
        second_worker = error.message
    return {
        **described,
        "model": model.get_config(),
        "dtype policy": model.layers[-1].dtype_policy.name if model.layers else None,
        "compute dtypes": [layer.compute_dtype for layer in model.layers],
        "optimizer": (type(optimizer).__name__, optimizer.get_config()),
        "loss scaling": type(model.optimizer).__name__,
        "loss": describe_loss(model.loss),
        "metrics": [m.get_config() for m in model.compiled_metrics._user_metrics],
        "steps per execution": int(model._steps_per_execution.numpy()),
        "steps": p.steps,
        "validation steps": p.validation_steps,
        "train batches": batches_digest(p.train_data),
        "validation batches": batches_digest(p.validation_data) if p.validation_data else None,
        "pipeline": pipeline_stages(p.train_data),
        "shard of worker 1 of 2": second_worker,
        "callbacks": [
            (
                type(c).__name__,
                {k: v for k, v in vars(c).items() if isinstance(v, (int, float, str, list))},
            )
            for c in callbacks
        ],
        "checkpoints": (checkpoints.manager._max_to_keep, str(checkpoints.directory)),
    }


def test_every_schema_field_is_wired_or_explained(tmp_path: Path) -> None:
    covered = set(alternatives(tmp_path)) | set(NOT_TRAINER) | set(BEHAVIOUR)
    missing = [f for f in schema_fields() if f not in covered]
    assert not missing, f"fields with no wiring test and no reason to be ignored: {missing}"
    stale = sorted(covered - set(schema_fields()))
    assert not stale, f"entries for fields the schema no longer has: {stale}"


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("wiring")
    write_data_files(directory)
    return directory


@pytest.mark.parametrize("field", sorted(alternatives(Path("/nonexistent"))))
def test_changing_a_field_changes_what_is_built(field: str, storage: Path) -> None:
    base, changed = alternatives(storage)[field]
    before, after = built(base, storage), built(changed, storage)
    assert "error" not in before, before["error"]
    differing = [key for key in after if before.get(key) != after[key]]
    assert differing, f"changing {field} changed nothing the trainer builds"


def test_building_twice_builds_the_same(storage: Path) -> None:
    """Without this, any difference above could be noise rather than wiring."""
    assert built({}, storage) == built({}, storage)


@pytest.mark.parametrize("enabled", [True, False])
def test_export_enabled_decides_whether_a_model_is_exported(tmp_path: Path, enabled: bool) -> None:
    import tensorflow as tf
    from tftj_trainer.config import storage_paths

    spec = TFTrainingJobSpec.model_validate(
        small_spec({"training": {"epochs": 1, "stepsPerEpoch": 2}, "export": {"enabled": enabled}})
    )
    params = resolve(spec, name="exported")
    paths = storage_paths(params, str(tmp_path))
    train_alone(params, tmp_path)
    assert (paths.export / "saved_model.pb").exists() is enabled
    assert tf.train.latest_checkpoint(str(paths.checkpoints)) is not None
