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
