"""Ctrl-C on `tftj run` stops every worker cleanly and says how to resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

from tftj.localrun.progress import read_progress
from tftj.localrun.workers import scratch_dir

from tests.trainer.conftest import TFTJ, trainer_env, wait_for, write_manifest


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose: it no longer runs anything.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def kill_leftover_workers(workdir: Path) -> None:
    """Whatever happened to the test, no worker of it outlives it.

    Workers run in their own sessions (so a terminal's Ctrl-C reaches only `tftj run`), so
    killing `tftj run` alone would leave them training.
    """
    try:
        state = json.loads((workdir / "workers" / "state.json").read_text())
    except (OSError, ValueError):
        return
    for worker in state["workers"]:
        if not alive(worker["pid"]):
            continue  # its pid may already belong to someone else
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker["pid"], signal.SIGKILL)


def test_ctrl_c_stops_all_workers_and_exits_130(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, "interrupted", {"training": {"epochs": 1000}})
    workdir = tmp_path / "work"
    run = subprocess.Popen(
        [
            TFTJ,
            "run",
            str(path),
            "--workers",
            "2",
            "--workdir",
            str(workdir),
            "--grace-seconds",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=trainer_env(),
        # As in a terminal's foreground: SIGINT at its default, so Python turns it into
        # KeyboardInterrupt. A test run started in the background of a script inherits SIGINT
        # ignored, and Python then leaves it ignored (the cold make test run saw exactly that).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:

        def training_started() -> dict | None:
            try:
                state = json.loads((workdir / "workers" / "state.json").read_text())
            except (OSError, ValueError):
                return None
            progress = read_progress(state["workers"][0]["metricsPort"])
            return state if progress is not None and progress.step >= 1 else None

        state = wait_for(training_started, 120, "the first training step")
        # The workers' throw-away files (autograph's sources, the non-chief's checkpoint
        # scratch) go under the run's directory, not the machine's /tmp ...
        scratch = [scratch_dir(workdir, w["index"]) for w in state["workers"]]
        assert all(any(d.iterdir()) for d in scratch), [str(d) for d in scratch]
        run.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C delivers to `tftj run`
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        kill_leftover_workers(workdir)
    assert run.returncode == 130, out + err
    assert "interrupted: stopping 2 worker(s)" in err
    assert "resumes from the latest checkpoint" in err
    assert not any(alive(w["pid"]) for w in state["workers"])
    # ... and are gone once the workers are stopped, whether they exited or were killed.
    assert not any(d.exists() for d in scratch)
