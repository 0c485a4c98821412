"""The exported SavedModel serves raw features: its preprocessing travels inside it.

Features here are far from zero mean / unit variance (offsets of 1000, scales from 0.01 to 100),
so a model that lost its normalization would serve nonsense on raw rows.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from tftj.api.models import TFTrainingJobSpec
from tftj.api.resolve import resolve

from tests.trainer.conftest import PYTHON, small_spec, train_alone, trainer_env

SERVE = """
import json, sys
import numpy as np, tensorflow as tf
answers = {}
for export, rows in json.loads(sys.stdin.read()).items():
    serve = tf.saved_model.load(export).signatures["serving_default"]
    spec = serve.structured_input_signature[1]["features"]
    out = serve(features=tf.constant(np.asarray(rows, dtype=np.float32)))
    answers[export] = {
        "input": [spec.name, spec.dtype.name, spec.shape.as_list()],
        "outputs": {k: v.numpy().tolist() for k, v in out.items()},
    }
print(json.dumps(answers))
"""


def raw_dataset(n: int, task: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    clean = rng.standard_normal((n, 4)).astype(np.float32)
    raw = clean * np.array([100, 0.01, 5, 1], np.float32) + np.array([1000, -3, 50, 0], np.float32)
    scores = clean @ rng.standard_normal((4, 3)).astype(np.float32)
    if task == "classification":
        return raw, np.argmax(scores, axis=1).astype(np.float32)
    if task == "binary":
        return raw, (scores[:, 0] > 0).astype(np.float32)
    return raw, scores[:, 0]


def write_csv(path: Path, features: np.ndarray, labels: np.ndarray) -> Path:
    rows = ["a,b,c,d,label"] + [
        ",".join(f"{v:.9g}" for v in [*x, y]) for x, y in zip(features, labels, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def served(requests: dict[str, np.ndarray]) -> dict[str, Any]:
    """Each export's serving signature's answer, from a fresh process that has only them."""
    result = subprocess.run(
        [PYTHON, "-c", SERVE],
        input=json.dumps({export: rows.tolist() for export, rows in requests.items()}),
        capture_output=True,
        text=True,
        timeout=120,
        env=trainer_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


CASES = {  # task: (normalization, output names and shapes)
    "classification": ("z-score", {"probabilities": [3], "class_ids": []}),
    "binary": ("min-max", {"probabilities": [1], "class_ids": []}),
    "regression": ("z-score", {"predictions": [1]}),
}


def test_export_serves_raw_features_like_the_trained_model(tmp_path: Path) -> None:
    from tftj_trainer.config import storage_paths

    trained: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for task, (normalization, _) in CASES.items():
        features, labels = raw_dataset(800, task)
        csv = write_csv(tmp_path / f"{task}.csv", features, labels)
        spec = TFTrainingJobSpec.model_validate(
            small_spec(
                {
                    "data": {
                        "format": "csv",
                        "path": str(csv),
                        "preprocess": {"normalization": normalization},
                    },
                    "model": {
                        "task": task,
                        "hiddenUnits": [32],
                        "outputUnits": 3 if task == "classification" else 1,
                    },
                    "training": {"epochs": 8, "batchSize": 32, "learningRate": 0.01},
                }
            )
        )
        params = resolve(spec, name="served")
        paths = storage_paths(params, str(tmp_path / task))
        model = train_alone(params, tmp_path / task)
        rows = features[:100]
        expected = np.asarray(model(rows, training=False), dtype=np.float32)
        trained[str(paths.export)] = (rows, expected, labels[:100])
        assert not [p.name for p in paths.export.parent.iterdir() if p.name.startswith(".")]

    answers = served({export: rows for export, (rows, _, _) in trained.items()})
    for (task, (_, outputs)), (export, (_, expected, labels)) in zip(
        CASES.items(), trained.items(), strict=True
    ):
        answer = answers[export]
        assert answer["input"] == ["features", "float32", [None, 4]], task
        got = {k: np.asarray(v) for k, v in answer["outputs"].items()}
        assert {k: list(v.shape[1:]) for k, v in got.items()} == outputs, task
        key = "predictions" if task == "regression" else "probabilities"
        np.testing.assert_allclose(got[key], expected, rtol=1e-4, atol=1e-5, err_msg=task)
        # And the predictions are good ones on raw rows: the normalization is really inside.
        if task == "regression":
            assert np.corrcoef(got[key][:, 0], labels)[0, 1] > 0.9, task
        else:
            assert np.mean(got["class_ids"] == labels) > 0.85, task


def test_a_crash_during_export_leaves_the_previous_export_whole(tmp_path: Path) -> None:
    import signal

    import tensorflow as tf

    from tests.trainer.conftest import start_trainer, wait_for, write_params

    storage = tmp_path / "storage"

    def trainer(epochs: int) -> subprocess.Popen[str]:
        params = write_params(tmp_path, f"e{epochs}", {"training": {"epochs": epochs}})
        return start_trainer(params, storage)

    first = trainer(1)
    assert first.wait(timeout=180) == 0, first.communicate()[1][-2000:]
    export = storage / "export"
    before = (export / "saved_model.pb").read_bytes()

    second = trainer(2)  # resumes at epoch 1, trains one more, exports again: killed meanwhile
    try:
        staging = wait_for(
            lambda: next(storage.glob(".export.partial-*"), None), 180, "the export to start", 0.005
        )
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=30)
    finally:
        if second.poll() is None:
            second.kill()
    assert staging.name.startswith(".export.partial-")
    assert (export / "saved_model.pb").read_bytes() == before  # the previous model, untouched
    tf.saved_model.load(str(export)).signatures["serving_default"](features=tf.zeros([1, 8]))
