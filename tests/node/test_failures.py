"""Failures of real trainer processes: a killed worker restarts the whole group from the
checkpoint on a PersistentVolume; a permanent error fails the job at once with the trainer's
own exit code and message."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

from clusterkit import Kubectl, job_status, wait_for, wait_job_phase
from localcluster import LocalCluster
from tftj.api.contract import ExitCode
from tftj.api.naming import storage_claim_name

from .test_training import digits_job, worker_pods

TIMEOUT = 600


def pod_of(k: Kubectl, job: str, attempt: int, index: int) -> dict[str, Any] | None:
    for pod in k.items("pods", "-l", f"tftj.dev/job-name={job},tftj.dev/attempt={attempt}"):
        if pod["metadata"]["annotations"].get("batch.kubernetes.io/job-completion-index") == str(
            index
        ):
            return pod
    return None


def container_pid(cluster: LocalCluster, pod: dict[str, Any]) -> int:
    """The host PID of the pod's trainer process, from containerd's task list."""
    container_id = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    for line in cluster.node.ctr("tasks", "list").stdout.splitlines()[1:]:
        task, pid, _status = line.split()
        if task == container_id:
            return int(pid)
    raise AssertionError(f"no containerd task for container {container_id}")


def volume_dir(k: Kubectl, claim: str) -> Path:
    """The directory on the real node behind a bound claim (a local PersistentVolume)."""
    volume = k.get("pvc", claim)["spec"]["volumeName"]
    return Path(k.get("pv", volume)["spec"]["local"]["path"])


def latest_checkpoint_epoch(root: Path) -> int:
    """The epoch of the newest checkpoint under ``root`` (tf.train's `checkpoint` index file)."""
    epochs = [0]
    for index in root.rglob("checkpoint"):
        found = re.search(r'^model_checkpoint_path: ".*?(\d+)"', index.read_text(), re.M)
        if found:
            epochs.append(int(found.group(1)))
    return max(epochs)


def test_killed_worker_restarts_the_group_from_the_checkpoint(
    k: Kubectl, cluster: LocalCluster
) -> None:
    k.apply(digits_job("gang", epochs=15, storage={"size": "1Gi"}))
    # Let attempt 0 save a few checkpoints (one per epoch) before a worker dies.
    wait_for(
        lambda: (job_status(k, "gang").get("progress") or {}).get("epoch", 0) >= 3,
        TIMEOUT,
        message=lambda: f"epoch 3: {job_status(k, 'gang')}",
    )
    victim = pod_of(k, "gang", 0, 1)
    assert victim is not None
    # SIGKILL the trainer process itself, as the OOM killer would (exit code 137).
    os.kill(container_pid(cluster, victim), signal.SIGKILL)

    def attempt_zero_over() -> bool:
        pods = [
            p for p in worker_pods(k, "gang") if p["metadata"]["labels"]["tftj.dev/attempt"] == "0"
        ]
        return all(p["status"].get("phase") in ("Failed", "Succeeded") for p in pods)

    wait_for(attempt_zero_over, TIMEOUT, message="attempt 0 to end")
    # Nothing trains between the end of attempt 0 and the start of attempt 1: the newest
    # checkpoint now is where attempt 1 must resume.
    saved = latest_checkpoint_epoch(volume_dir(k, storage_claim_name("gang")))
    assert saved >= 3

    done = wait_job_phase(k, "gang", "Succeeded", timeout=TIMEOUT)
    assert done["restarts"] == 1 and done["attempt"] == 1
    assert done["lastFailure"]["exitCode"] == 137 and done["lastFailure"]["workerIndex"] == 1
    chief = pod_of(k, "gang", 1, 0)
    assert chief is not None
    log = k("logs", chief["metadata"]["name"]).stdout
    assert f"starting at epoch {saved} of 15" in log, log[-3000:]


def test_bad_data_path_fails_the_job_without_retry(k: Kubectl) -> None:
    job = digits_job("baddata")
    job["spec"]["data"]["path"] = "data/no-such-file.csv"
    k.apply(job)
    failed = wait_job_phase(k, "baddata", "Failed", timeout=TIMEOUT)
    assert failed["restarts"] == 0 and failed["attempt"] == 0
    last = failed["lastFailure"]
    assert last["exitCode"] == ExitCode.BAD_DATA
    # The trainer's own one-line reason (its termination message), naming the file.
    assert "no-such-file.csv" in last["message"], last
