"""A worker killed mid-run: the group restarts and resumes from the checkpoint, not epoch 0."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.trainer.conftest import TFTJ, kill_worker_after_epochs, trainer_env, write_manifest

EPOCHS = 6


def test_killed_worker_group_restarts_from_the_checkpoint_epoch(tmp_path: Path) -> None:
    # ~4 s per epoch with 2 workers on 2 cores: long enough to kill a worker mid-run after a checkpoint.
    path = write_manifest(
        tmp_path,
        "resume",
        {
            "data": {"synthetic": {"examples": 4096}},
            "training": {"epochs": EPOCHS, "batchSize": 32},
            "runPolicy": {"backoffLimit": 1},
        },
    )
    workdir = tmp_path / "work"
    run = subprocess.Popen(
        [TFTJ, "run", str(path), "--workers", "2", "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=trainer_env(),
    )
    try:
        killed_at = kill_worker_after_epochs(workdir, worker=1, epochs=2, timeout=120)
        out, err = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out + err
    assert "worker 1 failed (killed by SIGKILL); restarting all workers" in err
    chief_log = (workdir / "workers" / "worker-0.log").read_text()
    attempts = chief_log.split("---- attempt 1 ----")
    assert len(attempts) == 2, "the group was not restarted"
    started = [int(e) for e in re.findall(r"starting at epoch (\d+) of", attempts[1])]
    assert started and started[0] >= killed_at >= 2, (started, killed_at)
    assert started[0] < EPOCHS
    assert f"epoch {EPOCHS}/{EPOCHS}" in out


def test_chief_killed_during_a_save_resumes_from_the_last_complete_checkpoint(
    tmp_path: Path,
) -> None:
    """SIGKILL the chief while TensorFlow writes a checkpoint (its `ckpt-N_temp` staging dir
    exists): the next attempt resumes from checkpoint N-1, the last one written whole, and
    trains to the end."""
    import os
    import signal

    import tensorflow as tf

    from tests.trainer.conftest import start_trainer, wait_for, write_params

    # Wide layers (~50 MB of variables and optimizer slots per save) keep the save open long
    # enough to be caught; few examples keep the epochs short.
    params = write_params(
        tmp_path,
        "midsave",
        {
            "data": {"synthetic": {"examples": 256}},
            "training": {"epochs": 3},
            "model": {"hiddenUnits": [2048, 2048]},
        },
    )
    storage = tmp_path / "storage"
    checkpoints = storage / "checkpoints"

    def trainer() -> subprocess.Popen[str]:
        return start_trainer(params, storage)

    def saving_after_the_first() -> Path | None:
        return next((p for p in checkpoints.glob("ckpt-*_temp") if p.name != "ckpt-1_temp"), None)

    first = trainer()
    try:
        staging = wait_for(saving_after_the_first, 240, "a checkpoint save after ckpt-1", 0.001)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    interrupted = int(staging.name.removeprefix("ckpt-").removesuffix("_temp"))
    named = tf.train.get_checkpoint_state(str(checkpoints)).model_checkpoint_path
    assert named.endswith(f"ckpt-{interrupted - 1}"), (named, "the kill came after the save")

    second = trainer()
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    assert f"starting at epoch {interrupted - 1} of 3" in err
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-3")
