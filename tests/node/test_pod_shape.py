"""The worker pod's shape, enforced by a real kubelet and runtime: Pod Security "restricted"
(non-root, no privilege escalation, seccomp, read-only root filesystem) and the GPU pod
shape (extended resource, taint toleration) on a node that advertises nvidia.com/gpu."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from chartoperator import ChartOperator
from clusterkit import Kubectl, wait_job_phase
from devoperator import training_job
from localcluster import LocalCluster
from realnode import NODE_NAME, REAL_NODE_LABEL

from .test_training import digits_job, worker_pods

TIMEOUT = 600
GPU = "nvidia.com/gpu"


def test_restricted_namespace_read_only_root_and_the_trainer_still_writes(k: Kubectl) -> None:
    ns = k.namespace
    assert ns is not None
    k.with_namespace(None)(
        "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted", "--overwrite"
    )
    k.apply(digits_job("psa", epochs=2, storage={"size": "1Gi"}))
    done = wait_job_phase(k, "psa", "Succeeded", timeout=TIMEOUT)
    assert done["replicas"]["succeeded"] == 2
    pods = worker_pods(k, "psa")
    for pod in pods:
        container = pod["spec"]["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    # The chief wrote its export and checkpoints on the volume, as uid 1000.
    chief = next(
        p
        for p in pods
        if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0"
    )
    log = k("logs", chief["metadata"]["name"]).stdout
    assert "training finished" in log, log[-3000:]


@pytest.fixture
def gpu_node(cluster: LocalCluster) -> Iterator[str]:
    """The real node advertising 2 nvidia.com/gpu (an extended resource: no device plugin,
    the scheduler only counts), as the documented node-status patch does."""
    patch = json.dumps({"status": {"capacity": {GPU: "2"}}})
    cluster.kubectl("patch", "node", NODE_NAME, "--subresource=status", "-p", patch)
    yield NODE_NAME
    remove = json.dumps([{"op": "remove", "path": "/status/capacity/nvidia.com~1gpu"}])
    cluster.kubectl("patch", "node", NODE_NAME, "--subresource=status", "--type=json", "-p", remove)


def test_gpu_worker_runs_on_the_real_node_on_cpu(k: Kubectl, gpu_node: str) -> None:
    job = digits_job("gpu", epochs=2)
    job["spec"]["workers"] = {
        **job["spec"]["workers"],
        "replicas": 1,
        "gpusPerWorker": 1,
        # The kwok GPU node has GPUs too; this test is about the real one.
        "podTemplate": {"nodeSelector": {REAL_NODE_LABEL[0]: REAL_NODE_LABEL[1]}},
    }
    k.apply(job)
    wait_job_phase(k, "gpu", "Succeeded", timeout=TIMEOUT)
    (pod,) = worker_pods(k, "gpu")
    assert pod["spec"]["nodeName"] == gpu_node
    assert pod["spec"]["containers"][0]["resources"]["limits"][GPU] == "1"
    # ExtendedResourceToleration admission added the toleration of the GPU taint.
    assert any(t.get("key") == GPU for t in pod["spec"].get("tolerations", []))
    log = k("logs", pod["metadata"]["name"]).stdout
    assert "gpusPerWorker is 1 but 0 GPU(s) are visible" in log, log[-3000:]


def test_the_charts_operator_writes_nowhere_but_its_volumes(
    k: Kubectl, operator: ChartOperator
) -> None:
    """The operator pod the chart installs runs with a read-only root filesystem and still
    does its work: nothing it needs writes outside its mounted volumes (the /tmp emptyDir)."""
    admin = k.with_namespace(operator.namespace)
    deployment = admin.get("deployment", operator.deployment)
    selector = ",".join(
        f"{a}={b}" for a, b in deployment["spec"]["selector"]["matchLabels"].items()
    )
    pods = admin.items("pods", "-l", selector)
    assert pods, "the operator pod"
    for pod in pods:
        container = pod["spec"]["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        # Never restarted: it did not die writing somewhere it may not.
        assert [s["restartCount"] for s in pod["status"]["containerStatuses"]] == [0]
    name = pods[0]["metadata"]["name"]
    write = "import sys; open(sys.argv[1], 'w').write('x')"
    refused = admin("exec", name, "--", "python", "-c", write, "/probe", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused
    admin("exec", name, "--", "python", "-c", write, "/tmp/probe")  # the emptyDir is writable

    # And it works: admits and runs a job to the end, its workers on a kwok GPU node (pinned:
    # the real node may still list the GPUs test_gpu_worker_runs_on_the_real_node_on_cpu gave
    # it, and this synthetic kwok-contract job is not one for the real trainer).
    job = training_job("rofs", gpus=1)
    job["spec"]["workers"]["podTemplate"]["nodeSelector"] = {"type": "kwok"}
    k.apply(job)
    wait_job_phase(k, "rofs", "Succeeded", timeout=TIMEOUT)
    assert "Read-only file system" not in operator.logs(2000)
