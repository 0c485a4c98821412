"""TFTrainingJobs queued by the real Kueue controller (testbin/kueuecluster.py) on the local
control plane: admission against an nvidia.com/gpu quota, waiting while it is used up,
starting when it frees, and preemption by a higher-priority job with a later resume.

Kueue manages the operator's worker Job (batch/v1, one per attempt), not the TFTrainingJob:
the Job carries `kueue.x-k8s.io/queue-name`, Kueue keeps it suspended until its Workload is
admitted and suspends it again to preempt it (docs/kueue.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from clusterkit import HOLD_LABEL, Kubectl, condition, dump_yaml, wait_for
from clusterkit import job_status as status
from clusterkit import wait_job_phase as wait_phase
from devoperator import training_job
from kueuecluster import Kueue, kueue_binary
from localcluster import LocalCluster

TIMEOUT = 90
GPU = "nvidia.com/gpu"
DEADLINE = 15  # runPolicy.activeDeadlineSeconds of the queued job: longer than its run


@pytest.fixture(scope="module")
def kueue(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Kueue]:
    binary = kueue_binary(None)
    if not binary.exists():
        pytest.fail(f"{binary} missing: build it with `make testbin`", pytrace=False)
    proc = Kueue(cluster.kubeconfig, tmp_path_factory.mktemp("kueue"), binary).start()
    failed_before = request.session.testsfailed
    yield proc
    if request.session.testsfailed > failed_before:
        print(f"---- kueue log ----\n{proc.logs(80)}")
    proc.stop()


def queues(k: Kubectl, namespace: str, gpus: int, preemption: dict[str, str] | None = None) -> str:
    """A ResourceFlavor for the kwok GPU nodes, a ClusterQueue with `gpus` GPUs (and room for
    the workers' cpu/memory requests), and a LocalQueue in `namespace`; the LocalQueue's name."""
    cq = f"cq-{namespace}"
    flavor = "kwok-gpu"
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": flavor},
            # Kueue adds these node labels to admitted pods: they land on the GPU nodes.
            "spec": {"nodeLabels": {"testbin.tftj.dev/gpu": "true"}},
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": cq},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                **({"preemption": preemption} if preemption else {}),
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", GPU],
                        "flavors": [
                            {
                                "name": flavor,
                                "resources": [
                                    {"name": "cpu", "nominalQuota": "64"},
                                    {"name": "memory", "nominalQuota": "256Gi"},
                                    {"name": GPU, "nominalQuota": str(gpus)},
                                ],
                            }
                        ],
                    }
                ],
            },
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "team", "namespace": namespace},
            "spec": {"clusterQueue": cq},
        },
    ]
    k.apply(dump_yaml(*objs))

    def active() -> bool:
        got = k.with_namespace(None).get("clusterqueue", cq)
        return (condition(got, "Active") or {}).get("status") == "True"

    wait_for(active, TIMEOUT, message=f"ClusterQueue {cq} Active")
    return "team"


def queued_job(name: str, queue: str, *, hold: bool, **spec: Any) -> dict[str, Any]:
    """Two workers with two GPUs each (4 GPUs), in `queue`; `hold` keeps them running."""
    return training_job(
        name,
        replicas=2,
        gpus=2,
        run_seconds=2,
        pod_labels={HOLD_LABEL: "true"} if hold else None,
        scheduling={"queueName": queue, **spec.pop("scheduling", {})},
        **spec,
    )


def workload(k: Kubectl, job_name: str) -> dict[str, Any] | None:
    """Kueue's Workload for worker Job `job_name` (owned by it)."""
    for wl in k.items("workloads"):
        owners = wl["metadata"].get("ownerReferences") or []
        if any(o["kind"] == "Job" and o["name"] == job_name for o in owners):
            return wl
    return None


def is_admitted(wl: dict[str, Any] | None) -> bool:
    return wl is not None and (condition(wl, "Admitted") or {}).get("status") == "True"


def release(k: Kubectl, name: str) -> None:
    """Let the held workers of job `name` finish (kwok completes them after run-seconds)."""
    k("label", "pods", "-l", f"tftj.dev/job-name={name}", f"{HOLD_LABEL}-")


def running_on_gpu_nodes(k: Kubectl, name: str) -> list[dict[str, Any]]:
    pods = [
        p
        for p in k.items("pods", "-l", f"tftj.dev/job-name={name}")
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    return pods if len(pods) == 2 else []


LINGER_FINALIZER = "testbin.tftj.dev/linger"
# Appended, so the Job controller's own tracking finalizer stays.
LINGER = json.dumps([{"op": "add", "path": "/metadata/finalizers/-", "value": LINGER_FINALIZER}])


def unlinger(k: Kubectl, pod: str) -> None:
    finalizers = k.get("pod", pod)["metadata"].get("finalizers") or []
    at = finalizers.index(LINGER_FINALIZER)
    patch = [
        {"op": "test", "path": f"/metadata/finalizers/{at}", "value": LINGER_FINALIZER},
        {"op": "remove", "path": f"/metadata/finalizers/{at}"},
    ]
    k("patch", "pod", pod, "--type=json", "-p", json.dumps(patch))


def low_pods(k: Kubectl, names: list[str]) -> list[dict[str, Any]]:
    return [
        p for p in k.items("pods", "-l", "tftj.dev/job-name=low") if p["metadata"]["name"] in names
    ]


def test_admitted_queued_until_the_quota_frees(k: Kubectl, kueue: Kueue, namespace: str) -> None:
    queue = queues(k, namespace, gpus=4)
    k.apply(queued_job("first", queue, hold=True))
    wait_phase(k, "first", "Running", TIMEOUT)
    wl = workload(k, "first-a0")
    assert is_admitted(wl), wl
    assert k.get("jobs", "first-a0")["spec"]["suspend"] is False
    pods = wait_for(lambda: running_on_gpu_nodes(k, "first"), TIMEOUT, message="first's workers")
    for pod in pods:
        assert pod["spec"]["nodeName"].startswith("kwok-gpu-"), pod["spec"]["nodeName"]
        assert pod["spec"]["nodeSelector"]["testbin.tftj.dev/gpu"] == "true"

    # The quota is used up: the second job's worker Job stays suspended, and the tftj job says
    # why in Kueue's own words.
    k.apply(queued_job("second", queue, hold=False, runPolicy={"activeDeadlineSeconds": DEADLINE}))

    def queued() -> dict[str, Any] | None:
        st = status(k, "second")
        pending = condition({"status": st}, "Pending") or {}
        return st if pending.get("reason") == "Queued" and "quota" in pending["message"] else None

    st = wait_for(queued, TIMEOUT, message=lambda: f"second queued: {status(k, 'second')}")
    assert st is not None  # wait_for returns only truthy values
    assert st["phase"] == "Pending" and st["restarts"] == 0
    assert k.get("jobs", "second-a0")["spec"]["suspend"] is True
    assert not k.items("pods", "-l", "tftj.dev/job-name=second")
    assert not is_admitted(workload(k, "second-a0"))
    described = k("describe", "tftrainingjob", "second").stdout
    assert "Queued" in described and f"queue {queue}" in described and "quota" in described

    # Queued for longer than its activeDeadlineSeconds: as for a Kubernetes Job, time waiting
    # in the queue is not active time, so it neither fails nor starts the clock.
    created = datetime.fromisoformat(k.get("tftj", "second")["metadata"]["creationTimestamp"])

    def queued_past_its_deadline() -> bool:
        st = status(k, "second")
        assert st.get("phase") == "Pending" and "activeStartTime" not in st, st
        # The operator re-checks deadlines every resync (2 s here): well past it.
        return (datetime.now(UTC) - created).total_seconds() > DEADLINE + 6

    wait_for(
        queued_past_its_deadline, DEADLINE + TIMEOUT, message="second queued past its deadline"
    )

    release(k, "first")
    wait_phase(k, "first", "Succeeded", TIMEOUT)
    st = wait_phase(k, "second", "Succeeded", TIMEOUT)
    assert st["restarts"] == 0 and st["attempt"] == 0
    assert st["activeStartTime"] > st["startTime"] and "lastFailure" not in st


def test_preempted_by_a_higher_priority_job_then_resumed(
    k: Kubectl, kueue: Kueue, namespace: str
) -> None:
    cluster_k = k.with_namespace(None)
    priority = f"high-{namespace}"
    cluster_k.apply(
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": priority},
            "value": 1000,
        }
    )
    queue = queues(k, namespace, gpus=4, preemption={"withinClusterQueue": "LowerPriority"})
    try:
        k.apply(queued_job("low", queue, hold=True))
        wait_phase(k, "low", "Running", TIMEOUT)
        # A finalizer keeps the workers the preemption stops visible (Failed, exit code 143)
        # instead of gone within moments: the operator must not take them for a failure,
        # neither while Kueue holds the Job nor after it resumes it.
        stopped = [p["metadata"]["name"] for p in running_on_gpu_nodes(k, "low")]
        assert stopped
        for pod in stopped:
            k("patch", "pod", pod, "--type=json", "-p", LINGER)

        k.apply(queued_job("high", queue, hold=True, scheduling={"priorityClassName": priority}))

        # Kueue evicts low's Workload and suspends its worker Job: low is queued again, not
        # failed, and the stopped workers are not charged to its backoffLimit.
        def preempted() -> dict[str, Any] | None:
            st = status(k, "low")
            pending = condition({"status": st}, "Pending") or {}
            return (
                st if pending.get("status") == "True" and "reempt" in pending["message"] else None
            )

        st = wait_for(preempted, TIMEOUT, message=lambda: f"low preempted: {status(k, 'low')}")
        assert st is not None
        assert st["phase"] == "Pending" and st["restarts"] == 0 and "lastFailure" not in st
        assert k.get("jobs", "low-a0")["spec"]["suspend"] is True
        wait_for(
            lambda: all(p["status"].get("phase") == "Failed" for p in low_pods(k, stopped)),
            TIMEOUT,
            message="the stopped workers Failed",
        )
        wait_phase(k, "high", "Running", TIMEOUT)

        # When high finishes, Kueue admits low again and its worker Job resumes.
        release(k, "high")
        wait_phase(k, "high", "Succeeded", TIMEOUT)
        wait_phase(k, "low", "Running", TIMEOUT)
        assert len(low_pods(k, stopped)) == len(stopped)  # still there, still Failed
        for pod in stopped:
            unlinger(k, pod)
        release(k, "low")
        st = wait_phase(k, "low", "Succeeded", TIMEOUT)
        assert st["restarts"] == 0 and "lastFailure" not in st
    finally:
        cluster_k("delete", "priorityclass", priority, "--ignore-not-found", check=False)


@pytest.fixture(autouse=True)
def _cluster_queue_cleanup(k: Kubectl, namespace: str) -> Iterator[None]:
    yield
    k.with_namespace(None)(
        "delete",
        "clusterqueue",
        f"cq-{namespace}",
        "--ignore-not-found",
        "--wait=false",
        check=False,
    )
