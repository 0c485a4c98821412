"""Streamed input with real worker processes: bounded memory, disjoint shards, resume.

Datasets are generated here (tests/trainer/records.py); sizes are chosen so the whole module
runs in a couple of minutes on 2 cores.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.trainer.conftest import (
    TFTJ,
    kill_worker_after_epochs,
    manifest,
    small_spec,
    trainer_command,
    trainer_env,
    write_params,
)
from tests.trainer.memcg import memory_cgroup, wait_with_peak_rss
from tests.trainer.records import teacher_dataset, write_examples

MB = 1 << 20
REPO = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------ memory: bounded, flat

FEATURES = 2048  # 8 KiB records: a large dataset in few records, so few steps
RECORDS_PER_FILE = 16384  # ~134 MB per file
FILES = 10  # ~1.3 GB in all
LIMIT = 400 * MB  # a worker's hard memory limit: a third of the dataset


def run_limited(tmp: Path, name: str, path: str, limit: int, **data: Any) -> tuple[int, int, str]:
    """One trainer process under a memory cgroup: (exit code, peak RSS bytes, stderr tail)."""
    params = write_params(
        tmp,
        name,
        {
            "data": {
                "format": "tfrecord",
                "path": path,
                "numFeatures": FEATURES,
                "validationSplit": 0.05,
                "shuffleBuffer": 1024,
                **data,
            },
            "model": {"hiddenUnits": [8], "outputUnits": 4},
            "training": {"epochs": 1, "batchSize": 512},
            "export": {"enabled": False},
        },
    )
    log = tmp / f"{name}.log"
    with memory_cgroup(limit) as cgroup, log.open("w") as stderr:
        process = cgroup.start(
            trainer_command(params, tmp / f"{name}-storage"),
            env=trainer_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        code, peak = wait_with_peak_rss(process)
    err = log.read_text()
    return code, peak, err[-2000:]


@pytest.fixture(scope="module")
def big_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FILES copies of one generated shard (copies: distinct files, distinct page cache)."""
    directory = tmp_path_factory.mktemp("big")
    features, labels = teacher_dataset(RECORDS_PER_FILE, FEATURES, seed=1)
    first = write_examples(directory / "part-00.tfrecord", features, labels)
    for i in range(1, FILES):
        shutil.copyfile(first, directory / f"part-{i:02d}.tfrecord")
    return directory


def test_a_dataset_larger_than_the_memory_limit_trains_with_flat_memory(
    big_dataset: Path, tmp_path: Path
) -> None:
    size = sum(f.stat().st_size for f in big_dataset.iterdir())
    assert size > 3 * LIMIT
    files = sorted(str(f) for f in big_dataset.iterdir())

    small_code, small_rss, small_err = run_limited(tmp_path, "x1", ",".join(files[:2]), LIMIT)
    assert small_code == 0, small_err
    big_code, big_rss, big_err = run_limited(tmp_path, "x5", str(big_dataset), LIMIT)
    assert big_code == 0, big_err
    assert "starting at epoch 0 of 1" in big_err and "training finished" in big_err
    # 5x the data, 1 GB more of it: the worker's peak RSS stays where it was.
    assert big_rss < small_rss * 1.15, (small_rss / MB, big_rss / MB)

    # The control: holding the shard in memory (data.cache) under the same limit is killed.
    cached_code, _, cached_err = run_limited(
        tmp_path, "cached", str(big_dataset), LIMIT, cache=True
    )
    assert cached_code == -signal.SIGKILL, cached_err


# ------------------------------------------------------- two workers: disjoint files, resume

SHARDS, PER_SHARD, EPOCHS = 6, 300, 5


def write_id_shards(directory: Path) -> None:
    """Feature 0 of every record is its id: shard * 1000 + record."""
    directory.mkdir()
    for shard in range(SHARDS):
        features, labels = teacher_dataset(PER_SHARD, 8, seed=shard)
        features[:, 0] = shard * 1000 + np.arange(PER_SHARD)
        write_examples(directory / f"shard-{shard}.tfrecord", features, labels)


def test_two_workers_read_disjoint_files_stay_in_sync_and_resume(tmp_path: Path) -> None:
    write_id_shards(tmp_path / "shards")
    spy = tmp_path / "seen"
    spy.mkdir()
    spec = small_spec(
        {
            "data": {
                "format": "tfrecord",
                "path": str(tmp_path / "shards" / "*.tfrecord"),
                "numFeatures": 8,
                "validationSplit": 0.0,
                "preprocess": {"normalization": "none"},
            },
            "model": {"builder": "tests.trainer.custom_model:spy", "outputUnits": 4},
            "training": {"epochs": EPOCHS, "batchSize": 32},
            "runPolicy": {"backoffLimit": 1},
            "export": {"enabled": False},  # the spy's py_function cannot be serialized
            "workers": {"replicas": 2},
        }
    )
    path = tmp_path / "pair.yaml"
    path.write_text(yaml.safe_dump(manifest("pair", spec)))
    workdir = tmp_path / "work"
    env = {**trainer_env(), "SPY_DIR": str(spy)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    run = subprocess.Popen(
        [TFTJ, "run", str(path), "--workers", "2", "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        killed_at = kill_worker_after_epochs(workdir, worker=1, epochs=2, timeout=180)
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out + err
    assert "worker 1 failed (killed by SIGKILL); restarting all workers" in err

    # Each worker trained only on records of its own files: 0, 2, 4 and 1, 3, 5.
    seen = {
        w: {int(i) // 1000 for i in (spy / f"worker-{w}.ids").read_text().split()} for w in (0, 1)
    }
    assert seen == {0: {0, 2, 4}, 1: {1, 3, 5}}, seen

    logs = [(workdir / "workers" / f"worker-{w}.log").read_text() for w in (0, 1)]
    attempts = logs[0].split("---- attempt 1 ----")
    assert len(attempts) == 2, "the group was not restarted"
    started = [int(e) for e in re.findall(r"starting at epoch (\d+) of", attempts[1])]
    assert started and killed_at <= started[0] < EPOCHS, (started, killed_at)
    digests = [re.findall(r"final weights digest (\w+)", log)[-1] for log in logs]
    assert digests[0] == digests[1]  # still in lock-step after the restart
