"""Node and pod faults on kwok: a worker evicted through the Eviction API, a node lost with
workers on it, workers that can never be scheduled. The policy (docs/reliability.md): what
Kubernetes does to a worker (DisruptionTarget) restarts the group without being charged to
runPolicy.backoffLimit, as a Job's podFailurePolicy `Ignore` on DisruptionTarget would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from clusterkit import Kubectl, wait_for
from devoperator import training_job
from localcluster import HOLD_LABEL, KWOK_NODE_ANNOTATION, LocalCluster, NodeSpec

TIMEOUT = 150
LINGER = "testbin.tftj.dev/linger"  # a finalizer only these tests add and remove


def status_of(k: Kubectl, name: str) -> dict[str, Any]:
    return dict(k.get("tftj", name).get("status") or {})


def running_pods(k: Kubectl, name: str, attempt: int) -> list[dict[str, Any]]:
    pods = k.items("pods", "-l", f"tftj.dev/job-name={name},tftj.dev/attempt={attempt}")
    return [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]


def wait_running(k: Kubectl, name: str, attempt: int, replicas: int = 2) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = wait_for(
        lambda: pods if len(pods := running_pods(k, name, attempt)) == replicas else None,
        60,
        message=f"{replicas} running workers of {name} attempt {attempt}",
    )
    return result


def wait_disrupted(k: Kubectl, name: str) -> dict[str, Any]:
    """The job's status once it counted one disruption."""
    status: dict[str, Any] = wait_for(
        lambda: s if (s := status_of(k, name)).get("disruptions") == 1 else None,
        TIMEOUT,
        message=lambda: json.dumps(status_of(k, name), indent=1),
    )
    return status


def release(k: Kubectl, name: str) -> None:
    k("label", "pods", "-l", f"tftj.dev/job-name={name}", f"{HOLD_LABEL}-")


def test_evicted_worker_is_a_disruption_not_charged_to_backoff_limit(k: Kubectl) -> None:
    job = training_job("evict", run_seconds=None, pod_labels={HOLD_LABEL: "true"})
    job["spec"]["runPolicy"] = {"backoffLimit": 0}  # one charged failure would end it
    k("apply", "-f", "-", input=json.dumps(job))
    victim = wait_running(k, "evict", 0)[1]["metadata"]["name"]
    # The evicted pod lingers (Failed) until the test lets it go, as a kubelet's pod takes a
    # moment to be removed: kwok removes it at once, and a reconcile that finds it gone only
    # has the worker Job's podFailurePolicy condition, which does not carry the reason.
    linger = [{"op": "add", "path": "/metadata/finalizers/-", "value": LINGER}]
    k("patch", "pod", victim, "--type=json", "-p", json.dumps(linger))
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": victim, "namespace": k.namespace},
    }
    k(
        "create",
        "--raw",
        f"/api/v1/namespaces/{k.namespace}/pods/{victim}/eviction",
        "-f",
        "-",
        input=json.dumps(eviction),
    )
    status = wait_disrupted(k, "evict")
    assert status["restarts"] == 0
    assert status["lastFailure"]["reason"] == "Disrupted"
    assert "EvictionByEvictionAPI" in status["lastFailure"]["message"]
    let_go = {"metadata": {"$deleteFromPrimitiveList/finalizers": [LINGER]}}
    k("patch", "pod", victim, "--type=strategic", "-p", json.dumps(let_go))
    wait_running(k, "evict", 1)
    release(k, "evict")
    wait_for(lambda: status_of(k, "evict").get("phase") == "Succeeded", TIMEOUT, message="done")
    assert (status_of(k, "evict")["attempt"], status_of(k, "evict")["restarts"]) == (1, 0)


@pytest.fixture
def pool(k: Kubectl) -> Iterator[tuple[str, list[str]]]:
    """Three kwok nodes only this test's workers may use (label pool=<namespace>)."""
    label = ("testbin.tftj.dev/pool", str(k.namespace))
    names = [f"{k.namespace}-n{i}"[-63:] for i in range(3)]
    nodes = [NodeSpec(n, labels=dict([label])).manifest() for n in names]
    k("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))
    yield label[1], names
    k("delete", "node", *names, "--ignore-not-found", "--wait=false", check=False)


def test_node_lost_with_workers_restarts_the_group_elsewhere(
    k: Kubectl, pool: tuple[str, list[str]]
) -> None:
    pool_name, _ = pool
    job = training_job("lost", run_seconds=None, pod_labels={HOLD_LABEL: "true"})
    job["spec"]["workers"]["podTemplate"]["nodeSelector"] = {"testbin.tftj.dev/pool": pool_name}
    job["spec"]["runPolicy"] = {"backoffLimit": 0}
    k("apply", "-f", "-", input=json.dumps(job))
    # The worker pods spread or not; every node holding one of them is deleted.
    lost = sorted({p["spec"]["nodeName"] for p in wait_running(k, "lost", 0)})
    k("delete", "node", *lost)
    # The pod garbage collector fails and removes the orphaned pods (DeletionByPodGC).
    assert wait_disrupted(k, "lost")["restarts"] == 0
    new_nodes = {p["spec"]["nodeName"] for p in wait_running(k, "lost", 1)}
    assert not new_nodes & set(lost), "the new group runs on the nodes that are left"
    release(k, "lost")
    wait_for(lambda: status_of(k, "lost").get("phase") == "Succeeded", TIMEOUT, message="done")


def test_unschedulable_workers_end_at_the_deadline_saying_why(k: Kubectl) -> None:
    job = training_job("nogpu", gpus=16)  # the kwok GPU nodes have 8 each
    job["spec"]["runPolicy"] = {"activeDeadlineSeconds": 5}
    k("apply", "-f", "-", input=json.dumps(job))
    wait_for(
        lambda: status_of(k, "nogpu").get("phase") == "Failed",
        60,
        message=lambda: json.dumps(status_of(k, "nogpu"), indent=1),
    )
    last = status_of(k, "nogpu")["lastFailure"]
    assert last["reason"] == "DeadlineExceeded"
    assert "Insufficient nvidia.com/gpu" in last["message"], last
    wait_for(
        lambda: k.items("jobs", "-l", "tftj.dev/job-name=nogpu") == [],
        60,
        message="the worker Job removed",
    )


def test_node_not_ready_with_workers_restarts_the_group_once_its_pods_are_gone(
    k: Kubectl, pool: tuple[str, list[str]], cluster: LocalCluster
) -> None:
    """A node stops answering (its kubelet dead: kwok stops playing it, Ready=False) with
    workers on it. The workers are evicted (here after 1 s of not-ready instead of the default
    300 s) and counted as a disruption, but their pods stay Terminating: nothing can confirm
    they stopped, and a new group must never train next to a possibly live old one. The status
    says what it waits for. When the node is declared out of service (the documented
    non-graceful node shutdown taint) the pod GC removes them and the group restarts on the
    nodes left, without being charged to backoffLimit."""
    pool_name, _ = pool
    job = training_job("notready", run_seconds=None, pod_labels={HOLD_LABEL: "true"})
    job["spec"]["workers"]["podTemplate"]["nodeSelector"] = {"testbin.tftj.dev/pool": pool_name}
    job["spec"]["workers"]["podTemplate"]["tolerations"] = [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 1,
        }
    ]
    job["spec"]["runPolicy"] = {"backoffLimit": 0}
    k("apply", "-f", "-", input=json.dumps(job))
    dead = sorted({p["spec"]["nodeName"] for p in wait_running(k, "notready", 0)})
    admin = k.with_namespace(None)
    for node in dead:
        admin("annotate", "node", node, f"{KWOK_NODE_ANNOTATION[0]}-")
    # kwok lets go of a node only when it lists the nodes again (it ignores the annotation's
    # removal): from then on nothing renews the node's lease or plays its pods, a dead kubelet.
    cluster.restart_component("kwok")
    for node in dead:
        ready = next(
            c for c in admin.get("node", node)["status"]["conditions"] if c["type"] == "Ready"
        )
        not_ready = {**ready, "status": "False", "reason": "KubeletNotReady"}
        patch = {"status": {"conditions": [not_ready]}}
        admin("patch", "node", node, "--subresource=status", "-p", json.dumps(patch))

    status = wait_disrupted(k, "notready")
    assert status["restarts"] == 0
    assert "DeletionByTaintManager" in status["lastFailure"]["message"], status["lastFailure"]
    # The evicted pods cannot finish terminating: no new group meanwhile, and the status says why.
    waiting = wait_for(
        lambda: next(
            (
                c
                for c in status_of(k, "notready").get("conditions") or []
                if c.get("reason") == "StoppingPreviousAttempt"
            ),
            None,
        ),
        60,
        message="the condition saying the restart waits for the old pods",
    )
    assert "waiting for 2 worker pod(s)" in waiting["message"], waiting
    assert running_pods(k, "notready", 1) == []

    for node in dead:
        admin("taint", "node", node, "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute")
    new_nodes = {p["spec"]["nodeName"] for p in wait_running(k, "notready", 1)}
    assert not new_nodes & set(dead), "the new group runs on the nodes that are left"
    release(k, "notready")
    wait_for(lambda: status_of(k, "notready").get("phase") == "Succeeded", TIMEOUT, message="done")
    assert (status_of(k, "notready")["attempt"], status_of(k, "notready")["restarts"]) == (1, 0)
