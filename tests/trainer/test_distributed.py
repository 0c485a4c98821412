"""Two workers on localhost via `tftj run`: synchronous training and what it leaves behind."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.trainer.conftest import run_tftj, write_manifest, write_tfrecord

EPOCHS = 3
FREQUENCY = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    root = tmp_path_factory.mktemp("distributed")
    path = write_manifest(
        root,
        "pair",
        {
            "training": {"epochs": EPOCHS, "metrics": ["loss", "accuracy", "top-5-accuracy"]},
            "logging": {"frequency": FREQUENCY},
        },
    )
    workdir = root / "work"
    result = run_tftj("run", str(path), "--workers", "2", "--workdir", str(workdir))
    assert result.returncode == 0, result.stdout + result.stderr
    return result, workdir


def digest(log: Path) -> str:
    found = re.findall(r"final weights digest ([0-9a-f]+)", log.read_text())
    assert found, f"no weights digest in {log}"
    return found[-1]


def test_two_workers_end_with_identical_weights(
    run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, workdir = run
    assert digest(workdir / "workers" / "worker-0.log") == digest(
        workdir / "workers" / "worker-1.log"
    )
    # Both really trained as a group: each read its half of the data.
    assert "worker 1/2" in (workdir / "workers" / "worker-1.log").read_text()


def test_prints_progress_and_locations(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, workdir = run
    out = result.stdout
    assert f"epoch {EPOCHS}/{EPOCHS}" in out
    assert "loss" in out and "ex/s" in out
    assert str(workdir / "logs") in out
    assert str(workdir / "checkpoints") in out
    assert str(workdir / "export") in out


def test_checkpoints_and_export_are_written_by_the_chief(
    run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    import tensorflow as tf

    _, workdir = run
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    assert latest is not None and latest.endswith(f"ckpt-{EPOCHS}")
    model = tf.saved_model.load(str(workdir / "export"))
    outputs = model.signatures["serving_default"](features=tf.zeros([2, 8]))
    assert outputs["probabilities"].shape == (2, 10)
    assert outputs["class_ids"].shape == (2,)
    assert not [p.name for p in workdir.iterdir() if p.name.startswith(".export")]


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """TF2 summaries are tensors (Tags()['tensors']), not legacy scalars."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    return {
        tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
        for tag in acc.Tags()["tensors"]
    }


def test_tensorboard_holds_step_and_epoch_scalars(
    run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, workdir = run
    train = scalars(workdir / "logs" / "pair" / "train")
    validation = scalars(workdir / "logs" / "pair" / "validation")
    for tag in (
        "batch_loss",
        "batch_accuracy",
        "batch_top-5-accuracy",
        "learning_rate",
        "examples_per_second",
        "epoch_loss",
        "epoch_accuracy",
        "epoch_top-5-accuracy",
    ):
        assert tag in train, f"{tag} missing from train scalars {sorted(train)}"
    for tag in ("epoch_loss", "epoch_accuracy", "epoch_top-5-accuracy"):
        assert tag in validation, f"{tag} missing from validation scalars {sorted(validation)}"
    assert [step for step, _ in train["epoch_loss"]] == list(range(1, EPOCHS + 1))
    steps = [step for step, _ in train["batch_loss"]]
    assert steps[0] == 1 and all(step % FREQUENCY == 0 for step in steps[1:])
    assert all(value > 0 for _, value in train["learning_rate"])
    # Learnable data: the loss falls.
    assert train["epoch_loss"][-1][1] < train["epoch_loss"][0][1]


def test_tensorboard_holds_the_hparams_of_the_run(
    run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, workdir = run

    def hparams_content(directory: Path) -> plugin_data_pb2.HParamsPluginData:
        acc = EventAccumulator(str(directory))
        acc.Reload()
        (content,) = acc.PluginTagToContent("hparams").values()
        return plugin_data_pb2.HParamsPluginData.FromString(content)

    experiment = hparams_content(workdir / "logs").experiment
    names = {h.name for h in experiment.hparam_infos}
    assert {
        "training.learningRate",
        "training.batchSize",
        "model.hiddenUnits",
        "training.optimizer",
        "derived.effectiveLearningRate",
    } <= names
    assert any(
        m.name.tag == "epoch_loss" and m.name.group == "validation" for m in experiment.metric_infos
    )
    session = hparams_content(workdir / "logs" / "pair").session_start_info
    assert session.hparams["training.batchSize"].number_value == 64
    assert session.hparams["training.epochs"].number_value == EPOCHS
    assert session.hparams["model.hiddenUnits"].string_value == "[16]"
    assert session.hparams["training.optimizer"].string_value == "adam"


def test_two_workers_on_a_directory_of_files_shard_by_file(tmp_path: Path) -> None:
    """shardPolicy auto with >= 2 files gives each worker whole files; training stays in sync."""
    import numpy as np

    rng = np.random.default_rng(1)
    (tmp_path / "data").mkdir()
    for part, size in enumerate((300, 200)):  # uneven shards: steps per epoch must still agree
        features = rng.normal(size=(size, 8)).astype(np.float32)
        write_tfrecord(
            tmp_path / "data" / f"part-{part}.tfrecord",
            features,
            (features[:, 0] > 0).astype(np.int64),
        )
    path = write_manifest(
        tmp_path,
        "files",
        {
            "data": {"format": "tfrecord", "path": "data", "numFeatures": 8},
            "model": {"task": "binary"},
            "training": {"epochs": 2, "batchSize": 32},
        },
    )
    workdir = tmp_path / "work"
    result = run_tftj("run", str(path), "--workers", "2", "--workdir", str(workdir))
    assert result.returncode == 0, result.stdout + result.stderr
    logs = [workdir / "workers" / f"worker-{i}.log" for i in (0, 1)]
    assert all("shard policy file" in log.read_text() for log in logs)
    assert digest(logs[0]) == digest(logs[1])
