"""The trainer's pieces in-process, against real TensorFlow: readers, splits, precision."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tftj.api.models import TFTrainingJobSpec
from tftj.api.resolve import ResolvedParameters, resolve

from tests.trainer.conftest import small_spec, train_alone, write_tfrecord
from tests.trainer.records import write_examples


def params_for(patch: dict[str, Any]) -> ResolvedParameters:
    return resolve(TFTrainingJobSpec.model_validate(small_spec(patch)), name="parts")


def every_example(split: Any, params: ResolvedParameters) -> tuple[np.ndarray, np.ndarray]:
    """All examples of a split, one pass, sorted by row (file order is the reader's business)."""
    count = split.examples
    ds = split.dataset(params, policy="off", workers=1, index=0, batch_size=count, training=False)
    x, y = (np.asarray(t) for t in next(iter(ds)))
    order = np.lexsort(np.column_stack([x, y]).T)
    return x[order], y[order]


def test_every_file_format_reads_the_same_examples(tmp_path: Path) -> None:
    from tftj_trainer.data import load_input

    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 3)).astype(np.float32)
    labels = rng.integers(0, 10, size=40)
    (tmp_path / "csv").mkdir()
    for part in range(2):  # a directory of two files
        rows = ["x0,x1,x2,label"] + [
            ",".join(f"{v:.9g}" for v in features[i]) + f",{labels[i]}"
            for i in range(part * 20, part * 20 + 20)
        ]
        (tmp_path / "csv" / f"part-{part}.csv").write_text("\n".join(rows) + "\n")
    np.savez(tmp_path / "all.npz", features=features, label=labels)
    write_tfrecord(tmp_path / "p0.tfrecord", features[:20], labels[:20])
    write_tfrecord(tmp_path / "p1.tfrecord", features[20:], labels[20:])
    (tmp_path / "z").mkdir()  # compressed: gzip by name, zlib by name, gzip by setting
    write_examples(tmp_path / "z" / "a.tfrecord.gz", features[:10], labels[:10], "GZIP")
    write_examples(tmp_path / "z" / "b.tfrecord.zz", features[10:25], labels[10:25], "ZLIB")
    write_examples(tmp_path / "c.tfrecord", features[25:], labels[25:])
    write_examples(tmp_path / "d.gzipped", features[25:], labels[25:], "GZIP")
    csv_text = (tmp_path / "csv" / "part-0.csv").read_bytes() + b"\n".join(
        (tmp_path / "csv" / "part-1.csv").read_bytes().splitlines()[1:]
    )
    (tmp_path / "all.csv.gz").write_bytes(gzip.compress(csv_text.replace(b"\n", b"\r\n")))
    common = {"validationSplit": 0.0, "preprocess": {"normalization": "none"}}
    sources = {
        "csv directory": {"format": "csv", "path": str(tmp_path / "csv")},
        "npz file": {"format": "npz", "path": str(tmp_path / "all.npz")},
        "tfrecord glob": {
            "format": "tfrecord",
            "path": str(tmp_path / "p*.tfrecord"),
            "numFeatures": 3,
        },
        "tfrecord gzip + zlib": {
            "format": "tfrecord",
            "path": f"{tmp_path / 'z'},{tmp_path / 'c.tfrecord'}",
            "numFeatures": 3,
        },
        "tfrecord gzip by setting": {
            "format": "tfrecord",
            "path": f"{tmp_path / 'd.gzipped'},{tmp_path / 'd.gzipped'}",
            "numFeatures": 3,
            "compression": "gzip",
        },
        "csv gzip, CRLF": {"format": "csv", "path": str(tmp_path / "all.csv.gz")},
        "tfrecord list": {
            "format": "tfrecord",
            "path": f"{tmp_path / 'p1.tfrecord'},{tmp_path / 'p0.tfrecord'}",
            "numFeatures": 3,
        },
    }
    order = np.lexsort(np.column_stack([features, labels]).T)
    for what, data in sources.items():
        params = params_for({"data": {**data, **common}})
        if what == "tfrecord gzip by setting":  # the same file twice, read as gzip by setting
            x, _ = every_example(load_input(params).train, params)
            np.testing.assert_allclose(
                x[::2],
                features[25:][np.lexsort(np.column_stack([features[25:], labels[25:]]).T)],
                rtol=1e-6,
            )
            continue
        loaded = load_input(params)
        x, y = every_example(loaded.train, params)
        np.testing.assert_allclose(x, features[order], rtol=1e-6, err_msg=what)
        np.testing.assert_array_equal(y, labels[order], err_msg=what)
    params = params_for({"data": {**sources["csv directory"], **common}})
    assert load_input(params).train.num_files == 2


def test_normalization_statistics_come_from_the_training_split_only(tmp_path: Path) -> None:
    from tftj_trainer.data import load_input, split_validation, synthetic_examples

    params = params_for({"data": {"validationSplit": 0.25}})
    raw_train, _ = split_validation(synthetic_examples(params), 0.25, 42)
    loaded = load_input(params)
    assert loaded.statistics is not None
    np.testing.assert_allclose(loaded.statistics.offset, raw_train.features.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(loaded.statistics.scale, raw_train.features.std(axis=0), rtol=1e-5)
    assert loaded.validation is not None
    assert loaded.validation.examples == params.derived.validation_examples
    assert loaded.train.examples == params.derived.train_examples

    # Streamed: the held-out records are chosen by hash; the statistics are those of the rest.
    rng = np.random.default_rng(1)
    features = (rng.normal(size=(5000, 3)) * [1, 10, 100] + [5, -5, 50]).astype(np.float32)
    labels = rng.integers(0, 10, size=5000)
    write_tfrecord(tmp_path / "all.tfrecord", features, labels)
    data = {"format": "tfrecord", "path": str(tmp_path / "all.tfrecord"), "numFeatures": 3}
    params = params_for({"data": {**data, "validationSplit": 0.25}})
    loaded = load_input(params)
    assert loaded.statistics is not None and loaded.validation is not None
    train_x, _ = every_example(loaded.train, params)
    held_x, _ = every_example(loaded.validation, params)
    assert len(train_x) + len(held_x) == 5000
    assert 1100 < len(held_x) < 1400  # ~25%
    np.testing.assert_allclose(loaded.statistics.offset, train_x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(loaded.statistics.scale, train_x.std(axis=0), rtol=1e-4)
    rows = {tuple(r) for r in train_x}
    assert not any(tuple(r) in rows for r in held_x)  # disjoint


@pytest.mark.parametrize(
    ("policy", "files", "expected"),
    [
        ("auto", 1, "data"),
        ("auto", 4, "file"),
        ("off", 4, "off"),
        ("data", 4, "data"),
    ],
)
def test_shard_policy(policy: str, files: int, expected: str) -> None:
    from tftj_trainer.data import effective_shard_policy

    assert effective_shard_policy(policy, files, 2) == expected
    assert effective_shard_policy(policy, files, 1) == "off"  # a lone worker reads everything


def test_synthetic_data_is_seeded_and_learnable() -> None:
    from tftj_trainer.data import synthetic_examples

    a = synthetic_examples(params_for({}))
    b = synthetic_examples(params_for({}))
    np.testing.assert_array_equal(a.features, b.features)
    counts = np.bincount(a.labels.astype(int), minlength=10)
    assert (counts > 0).sum() >= 5  # several classes, not a constant label


def test_mixed_precision_on_cpu_keeps_the_policy_and_float32_variables() -> None:
    """No GPU here: the policy is still mixed_float16 (a warning says it is slow)."""
    import tensorflow as tf
    import tf_keras as keras
    from tftj_trainer.cluster import Cluster
    from tftj_trainer.training import prepare

    p = prepare(
        params_for({"training": {"precision": "mixed-float16"}}),
        Cluster((), 0),
        tf.distribute.get_strategy(),
    )
    try:
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        assert p.precision.compute_dtype == "float16"
        assert p.precision.variable_dtype == "float32"
        hidden = p.model.get_layer("dense_0")
        assert hidden.compute_dtype == "float16" and hidden.variable_dtype == "float32"
        assert p.model.get_layer("output").compute_dtype == "float32"
        assert isinstance(p.model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    ("kind", "extra", "checks"),
    [
        ("constant", {"warmupEpochs": 1.0}, {0: 0.0001, 9: 0.001, 50: 0.001}),
        ("cosine", {"minLearningRate": 0.0001}, {0: 0.001, 100: 0.0001}),
        ("step", {"decayRate": 0.5, "decayEpochs": 2.0}, {19: 0.001, 20: 0.0005, 40: 0.00025}),
        ("exponential", {"decayRate": 0.5, "decayEpochs": 2.0}, {10: 0.001 * 0.5**0.5}),
    ],
)
def test_learning_rate_schedules(
    kind: str, extra: dict[str, float], checks: dict[int, float]
) -> None:
    from tftj_trainer.optimization import learning_rate_schedule, schedule_steps

    params = params_for({"training": {"epochs": 10, "schedule": {"type": kind, **extra}}})
    training = params.spec.training
    schedule = learning_rate_schedule(training.schedule, 0.001, schedule_steps(training, 10))
    for step, expected in checks.items():
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-4), (kind, step)


def test_custom_builder_that_returns_no_model_is_a_model_error() -> None:
    from tftj_trainer.exitcodes import ModelError
    from tftj_trainer.model import build_model

    params = params_for({"model": {"builder": "tests.trainer.custom_model:not_a_model"}})
    with pytest.raises(ModelError, match="returned str, not a tf_keras Model"):
        build_model(8, params, None)


def test_resume_continues_the_optimizer_where_the_checkpoint_left_it(tmp_path: Path) -> None:
    """Epoch AND optimizer step are restored: schedules and Adam moments carry on, not restart."""
    import tf_keras as keras

    class FirstStep(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_begin(self, logs: Any = None) -> None:
            self.epoch: int | None = None
            self.iterations = int(self.model.optimizer.iterations.numpy())

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            if self.epoch is None:
                self.epoch = epoch

    seen = []
    for epochs in (2, 3):
        params = params_for({"training": {"epochs": epochs}})
        spy = FirstStep()
        train_alone(params, tmp_path, extra_callbacks=[spy])
        seen.append((spy.epoch, spy.iterations))
    steps = params_for({}).derived.steps_per_epoch
    assert seen == [(0, 0), (2, 2 * steps)]


@pytest.mark.parametrize(
    ("per_execution", "batches", "reports"),
    [
        (1, [0, 1, 2, 3, 4, 5], [1, 4, 8, 12]),
        (3, [2, 5], [3, 6, 9, 12]),
    ],
)
def test_the_per_step_hook_runs_once_per_execution_and_other_batch_hooks_still_run(
    per_execution: int, batches: list[int], reports: list[int]
) -> None:
    import tensorflow as tf
    import tf_keras as keras
    from tftj_trainer.callbacks import Reporting, TrainerCallbacks
    from tftj_trainer.metrics import TrainerMetrics

    class Recorder(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.batches: list[int] = []

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.batches.append(batch)

    class Recorded(Reporting):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.reported: list[int] = []

        def _report(self, step: int, now: float, logs: Any) -> None:
            self.reported.append(step)
            super()._report(step, now, logs)

    metrics = TrainerMetrics("parts", 0)
    reporting = Recorded(
        metrics=metrics,
        summaries=None,
        names=["loss"],
        frequency=4,
        steps_per_epoch=6,
        epochs=2,
        global_batch=2,
        schedule=lambda step: 0.1,
    )
    recorder = Recorder()
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=per_execution)
    data = (
        tf.data.Dataset.from_tensor_slices(
            (np.zeros((8, 2), np.float32), np.zeros((8, 1), np.float32))
        )
        .repeat()
        .batch(2)
    )
    callbacks = TrainerCallbacks(
        [reporting, recorder], per_step=reporting, model=model, epochs=2, steps=6
    )
    history = model.fit(data, epochs=2, steps_per_epoch=6, callbacks=callbacks, verbose=0)
    assert recorder.batches == batches * 2
    assert reporting.reported == reports
    assert sum(metrics.step_duration.counts) == len(batches) * 2  # one duration per execution
    assert len(history.history["loss"]) == 2


def test_strategy_plan_uses_nccl_between_gpus_ring_on_cpu_and_mirrors_local_gpus() -> None:
    """The GPU paths cannot run here; their choice is pure and checked on CPU."""
    from tftj_trainer.cluster import strategy_plan

    assert strategy_plan(distributed=True, local_gpus=8) == ("multi-worker", "NCCL")
    assert strategy_plan(distributed=True, local_gpus=0) == ("multi-worker", "RING")
    assert strategy_plan(distributed=False, local_gpus=4) == ("mirrored", None)
    assert strategy_plan(distributed=False, local_gpus=1) == ("default", None)
    assert strategy_plan(distributed=False, local_gpus=0) == ("default", None)


def test_collective_names_exist_in_tensorflow() -> None:
    import tensorflow as tf

    for name in ("NCCL", "RING"):
        assert hasattr(tf.distribute.experimental.CommunicationImplementation, name)


def test_a_damaged_newest_checkpoint_resumes_from_the_one_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The newest checkpoint's data file truncated (a crash mid-write, a storage fault): the
    next attempt resumes from the last complete checkpoint instead of failing or restarting."""
    import tensorflow as tf

    def run(epochs: int) -> None:
        train_alone(params_for({"training": {"epochs": epochs}}), tmp_path)

    run(3)
    newest = tmp_path / "checkpoints" / "ckpt-3.data-00000-of-00001"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    caplog.set_level("INFO", logger="tftj_trainer")
    run(4)
    assert "ckpt-3 is damaged" in caplog.text
    assert "starting at epoch 2 of 4" in caplog.text
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")
