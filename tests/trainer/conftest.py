"""Helpers for the trainer tier: real TensorFlow worker processes on loopback, no mocks."""

from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PYTHON = sys.executable
TFTJ = str(Path(sys.executable).with_name("tftj"))
T = TypeVar("T")


def merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: nested mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# Small and quick: a 2-core machine trains this in a few seconds per worker group.
SMALL_SPEC: dict[str, Any] = {
    "data": {"format": "synthetic", "synthetic": {"examples": 1024, "features": 8}},
    "training": {"epochs": 3, "batchSize": 64},
    "model": {"hiddenUnits": [16]},
    "logging": {"frequency": 4},
    "workers": {"replicas": 1, "gpusPerWorker": 0},
}


def manifest(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "tftj.dev/v1alpha1",
        "kind": "TFTrainingJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def write_manifest(directory: Path, name: str, patch: dict[str, Any] | None = None) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest(name, small_spec(patch))))
    return path


def small_spec(patch: dict[str, Any] | None = None) -> dict[str, Any]:
    """SMALL_SPEC with `patch`; a patch naming its own data format replaces the data section."""
    patch = patch or {}
    base = SMALL_SPEC
    if "format" in patch.get("data", {}):
        base = {k: v for k, v in SMALL_SPEC.items() if k != "data"}
    return merged(base, patch)


def write_params(directory: Path, name: str, patch: dict[str, Any] | None = None) -> Path:
    """A params file exactly as the operator's ConfigMap holds it."""
    from tftj.api.models import TFTrainingJobSpec
    from tftj.api.resolve import resolve, resolved_to_dict

    spec = TFTrainingJobSpec.model_validate(small_spec(patch))
    path = directory / f"{name}.params.yaml"
    path.write_text(yaml.safe_dump(resolved_to_dict(resolve(spec, name=name))))
    return path


def train_alone(params: Any, root: Path, extra_callbacks: Any = ()) -> Any:
    """The real train() as a lone worker in this process (default strategy, storage under
    `root`); returns the trained model."""
    import tensorflow as tf
    from tftj_trainer.cluster import Cluster
    from tftj_trainer.config import storage_paths
    from tftj_trainer.metrics import TrainerMetrics
    from tftj_trainer.training import train

    return train(
        params,
        storage_paths(params, str(root)),
        Cluster((), 0),
        tf.distribute.get_strategy(),
        TrainerMetrics(params.job.name, 0),
        attempt=0,
        extra_callbacks=extra_callbacks,
    )


# The tests' trainer processes' TMPDIR, removed when the test session ends: the tests SIGKILL
# workers, and what a killed one had in its temporary directory would stay in /tmp.
SCRATCH = Path(tempfile.mkdtemp(prefix="tftj-tests-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)


def trainer_env() -> dict[str, str]:
    """A lone worker's environment: nothing describing a group."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "TF_CONFIG" and not k.startswith("TFTJ_") and k != "JOB_COMPLETION_INDEX"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["TMPDIR"] = str(SCRATCH)
    return env


def trainer_command(params: Path, storage: Path, *extra: str, metrics_port: int = 0) -> list[str]:
    """`python -m tftj_trainer` for one lone worker (metrics port 0: any free one)."""
    return [
        PYTHON,
        "-m",
        "tftj_trainer",
        "--params",
        str(params),
        "--storage-root",
        str(storage),
        "--metrics-port",
        str(metrics_port),
        *extra,
    ]


def start_trainer(params: Path, storage: Path) -> subprocess.Popen[str]:
    """One lone worker in the background (stderr kept for the test, stdout dropped)."""
    return subprocess.Popen(
        trainer_command(params, storage),
        env=trainer_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_state(workdir: Path) -> dict[str, Any] | None:
    """`tftj run`'s state.json (pids and metrics ports of the current attempt), once written."""
    try:
        return dict(json.loads((workdir / "workers" / "state.json").read_text()))
    except (OSError, ValueError):
        return None


def kill_worker_after_epochs(workdir: Path, worker: int, epochs: int, timeout: float) -> int:
    """SIGKILL a worker of `tftj run` once the chief reports `epochs` epochs done (so their
    checkpoints exist); returns the epoch the chief had reached."""
    from tftj.localrun.progress import read_progress

    first = wait_for(lambda: run_state(workdir), 60, "the workers to start")
    chief_port = first["workers"][0]["metricsPort"]

    def epochs_done() -> int | None:
        progress = read_progress(chief_port)
        return progress.epoch if progress is not None and progress.epoch >= epochs else None

    reached = wait_for(epochs_done, timeout, f"{epochs} epochs (and their checkpoints)", 0.05)
    os.kill(first["workers"][worker]["pid"], signal.SIGKILL)
    return reached


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `check` until it returns a truthy value; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def run_tftj(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TFTJ, *args], capture_output=True, text=True, timeout=timeout, env=trainer_env()
    )


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def write_tfrecord(path: Path, features: np.ndarray, labels: np.ndarray) -> None:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for x, y in zip(features, labels, strict=True):
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "features": tf.train.Feature(
                            float_list=tf.train.FloatList(value=x.tolist())
                        ),
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(y)])),
                    }
                )
            )
            writer.write(example.SerializeToString())


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "work"
