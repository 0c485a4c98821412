"""A TFTrainingJob trains for real: worker pods on the real node run the trainer image.

What kwok could only simulate is exercised here: the image built from the Dockerfile, the
parameters file mounted from the ConfigMap, worker discovery through the headless Service
and CoreDNS, MultiWorkerMirroredStrategy between two containers, the operator's progress
scrape of the chief's real pod IP, `kubectl logs` through the kubelet.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from clusterkit import Kubectl, job_status, wait_for, wait_job_phase
from realnode import NODE_NAME
from tftj.api.contract import ENV_WORKER_HOSTS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits-mlp.yaml"
EPOCHS = 6


def digits_job(name: str, epochs: int = EPOCHS, **spec: Any) -> dict[str, Any]:
    """examples/digits-mlp.yaml as shipped (it names no image, asks for no GPU and leaves the
    resources at their defaults, which must fit this 2-core node), with `name`, `epochs` and
    any spec section replaced."""
    job: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    job["metadata"]["name"] = name
    job["spec"]["training"]["epochs"] = epochs
    job["spec"].update(spec)
    return job


def worker_pods(k: Kubectl, name: str) -> list[dict[str, Any]]:
    return k.items("pods", "-l", f"tftj.dev/job-name={name}")


def weights_digest(log: str) -> str:
    found = re.findall(r"final weights digest ([0-9a-f]+)", log)
    assert found, f"no weights digest in the log:\n{log[-3000:]}"
    return str(found[-1])


def test_two_workers_train_for_real_and_agree(k: Kubectl) -> None:
    k.apply(digits_job("digits"))

    # While it runs, `kubectl get tftj` shows the epoch and loss scraped from the chief.
    def progress() -> dict[str, Any] | None:
        st = job_status(k, "digits")
        assert st.get("phase") != "Failed", st
        prog = st.get("progress") or {}
        return prog if st.get("phase") == "Running" and prog.get("loss") is not None else None

    running = wait_for(progress, 600, message=lambda: f"progress: {job_status(k, 'digits')}")
    assert running["totalEpochs"] == EPOCHS and running["loss"] > 0
    table = k("get", "tftj", "digits").stdout
    assert "Running" in table and "EPOCH" in table and "LOSS" in table, table

    done = wait_job_phase(k, "digits", "Succeeded", timeout=600)
    assert done["replicas"]["succeeded"] == 2 and done["restarts"] == 0

    pods = worker_pods(k, "digits")
    assert len(pods) == 2
    # Pods that ask for nothing special land on the real node, not on the kwok GPU node.
    assert {p["spec"]["nodeName"] for p in pods} == {NODE_NAME}
    # The default image reference resolved to the locally built trainer image: no pull.
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"tftj/trainer:0.1.0"}
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}
        # Peers are addressed by DNS name (headless Service + CoreDNS), not pod IP.
        hosts = env[ENV_WORKER_HOSTS].split(",")
        assert len(hosts) == 2 and all(".digits-workers:" in h for h in hosts), hosts

    logs = [k("logs", p["metadata"]["name"]).stdout for p in pods]
    for log in logs:
        # The parameters came from the mounted file: the epoch count is the job's.
        assert f"of {EPOCHS}" in log, log[-3000:]
    # Synchronous data-parallel training: both replicas end with the same weights.
    assert weights_digest(logs[0]) == weights_digest(logs[1])
