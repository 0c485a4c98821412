"""The operator killed with SIGKILL in the middle of reconciling many jobs, then restarted:
everything converges, with no duplicate attempt and no orphan."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from clusterkit import Kubectl, wait_for
from devoperator import OperatorProcess, start_for_tests, stop_for_tests, training_job

JOBS = 12
TIMEOUT = 120


@pytest.fixture
def operator(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """Per test, unlike conftest's per-module operator: this test kills and restarts it."""
    proc = start_for_tests(cluster.kubeconfig, tmp_path_factory.mktemp("operator"))
    yield proc
    stop_for_tests(proc)


def test_sigkill_mid_reconcile_then_restart_converges(
    kubectl: Kubectl,
    operator: OperatorProcess,
    cluster: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    names = [f"crash-{i}" for i in range(JOBS)]
    kubectl(
        "apply",
        "-f",
        "-",
        input={
            "apiVersion": "v1",
            "kind": "List",
            "items": [training_job(n, replicas=2, run_seconds=3) for n in names],
        },
    )

    # Kill as soon as the operator is part-way: some worker Jobs exist, not all.
    def some_jobs() -> int:
        return len(kubectl.items("jobs", "-l", "tftj.dev/job-name"))

    wait_for(lambda: some_jobs() > 0, 60, interval=0.05, message="the first worker Job")
    operator.kill(signal.SIGKILL)
    assert operator.process is not None and operator.process.returncode == -signal.SIGKILL
    created_before_restart = some_jobs()

    operator.process = None
    operator.webhook_port = operator.metrics_port = operator.liveness_port = 0
    operator.start(die_with_parent=True)

    def all_succeeded() -> bool:
        items = kubectl.items("tftj")
        return len(items) == JOBS and all(
            (i.get("status") or {}).get("phase") == "Succeeded" for i in items
        )

    wait_for(all_succeeded, TIMEOUT, message=lambda: kubectl("get", "tftj").stdout)

    jobs = Counter(
        j["metadata"]["labels"]["tftj.dev/job-name"]
        for j in kubectl.items("jobs", "-l", "tftj.dev/job-name")
    )
    assert jobs == dict.fromkeys(names, 1), "exactly one worker Job per TFTrainingJob"
    assert {j["metadata"]["name"] for j in kubectl.items("jobs", "-l", "tftj.dev/job-name")} == {
        f"{n}-a0" for n in names
    }
    pods = Counter(
        p["metadata"]["labels"]["tftj.dev/job-name"]
        for p in kubectl.items("pods", "-l", "tftj.dev/job-name")
    )
    assert pods == dict.fromkeys(names, 2), "two workers each, none duplicated"
    configmaps = Counter(
        c["metadata"]["name"] for c in kubectl.items("configmaps", "-l", "tftj.dev/job-name")
    )
    assert configmaps == {f"{n}-params": 1 for n in names}
    for item in kubectl.items("tftj"):
        assert item["status"]["restarts"] == 0 and item["status"]["attempt"] == 0
    print(f"worker Jobs created before SIGKILL: {created_before_restart}/{JOBS}")
