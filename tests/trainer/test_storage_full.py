"""The job's storage fills up: the trainer stops at once with a one-line message naming the
storage and what to change, and an exit code the operator does not retry (a retry would resume
and fail at the same save). Storage is a real, small tmpfs: the test needs root to mount it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tftj.api.contract import ExitCode, failure_kind

from tests.trainer.conftest import last_line, trainer_command, trainer_env, write_params

# Room for the TensorBoard logs of the first epoch, not for the first checkpoint of this model.
TMPFS_SIZE = "256k"


@pytest.fixture
def small_storage(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "storage"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.fail(f"this test mounts a tmpfs and needs root: {mounted.stderr}", pytrace=False)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_full_storage_fails_at_once_naming_the_storage(tmp_path: Path, small_storage: Path) -> None:
    params = write_params(
        tmp_path, "full", {"training": {"epochs": 3}, "model": {"hiddenUnits": [256, 256]}}
    )
    termination_log = tmp_path / "termination-log"
    proc = subprocess.run(
        trainer_command(params, small_storage, "--termination-log", str(termination_log)),
        env=trainer_env(),
        capture_output=True,
        text=True,
        timeout=180,  # not a hang: a full disk ends the worker
    )
    assert proc.returncode == ExitCode.STORAGE_FULL, proc.stderr[-3000:]
    assert failure_kind(proc.returncode) == "Permanent"
    line = last_line(proc.stderr)
    assert line.startswith(
        f"tftj-trainer: error: storage full: no space left on device writing {small_storage}/"
        "checkpoints/"
    ), line
    assert f"the job's storage at {small_storage}" in line
    assert "spec.storage.size" in line
    assert "Traceback" not in proc.stderr
    assert (
        termination_log.read_text()
        == f"exit code 6: {line.removeprefix('tftj-trainer: error: ')}\n"
    )
