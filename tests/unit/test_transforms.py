"""The lean forms of worker Jobs and pods (tftj.operator.transforms) keep every field a
decision reads: reconcile() and the status readers answer the same on the full objects (as
the apiserver sends them) and on their lean forms, over random observed states."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from test_operator_reconcile_properties import observed_states
from tftj.operator import status
from tftj.operator.reconcile import Observed, reconcile
from tftj.operator.transforms import lean_job, lean_pod

Obj = dict[str, Any]

# What the apiserver adds around the fields the hand-made objects carry (from a kwok pod and
# an Indexed Job of the benchmark): none of it may change a decision, except the Job's counts,
# which the signals read (the hand-made Jobs have none).
POD_NOISE: Obj = {
    "metadata": {
        "generateName": "mnist-a0-0-",
        "finalizers": ["batch.kubernetes.io/job-tracking"],
        "labels": {
            "batch.kubernetes.io/controller-uid": "fd80ece0",
            "job-name": "mnist-a0",
            "team": "vision",
        },
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "mnist-a0"}],
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}" * 200},
        "managedFields": [{"manager": "kwok", "fieldsV1": {"f:status": {}}}],
    },
    "spec": {
        "containers": [{"name": "trainer", "image": "tftj/trainer:0.1.0", "env": []}],
        "nodeName": "kwok-cpu-1",
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}],
    },
    "status": {
        "hostIP": "10.1.0.1",
        "hostIPs": [{"ip": "10.1.0.1"}],
        "podIPs": [{"ip": "127.1.0.46"}],
        "qosClass": "Burstable",
        "startTime": "2026-12-01T13:52:21Z",
        # The kubelet's conditions that no decision reads (the lean pod drops them).
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": "2026-12-01T13:52:22Z"}
            for t in ("PodReadyToStartContainers", "Initialized", "ContainersReady")
        ],
        "containerStatuses": [
            {"name": "sidecar", "state": {"terminated": {"exitCode": 9, "finishedAt": "0"}}}
        ],
    },
}
JOB_NOISE: Obj = {
    "metadata": {"generation": 1, "labels": {"team": "vision"}, "annotations": {"a": "b"}},
    "spec": {"completions": 4, "parallelism": 4, "completionMode": "Indexed", "template": {}},
    "status": {"startTime": "2026-12-01T13:52:19Z", "terminating": 0, "active": 2, "ready": 1},
}


def noisy(obj: Obj, noise: Obj) -> Obj:
    """`obj` with `noise` merged in beside its own fields (its own values win; lists add)."""
    full = copy.deepcopy(obj)
    for part, extra in noise.items():
        target = full.setdefault(part, {})
        for key, value in extra.items():
            if isinstance(value, dict):
                target[key] = {**value, **(target.get(key) or {})}
            elif isinstance(value, list):
                target[key] = list(target.get(key) or []) + copy.deepcopy(value)
            else:
                target.setdefault(key, value)
        for condition in target.get("conditions") or []:
            condition.setdefault("lastProbeTime", None)
    return full


def full_state(observed: Observed) -> Observed:
    return replace(
        observed,
        attempt_jobs=[noisy(j, JOB_NOISE) for j in observed.attempt_jobs],
        pods=[noisy(p, POD_NOISE) for p in observed.pods],
    )


def lean_state(observed: Observed) -> Observed:
    return replace(
        observed,
        attempt_jobs=[lean_job(j) for j in observed.attempt_jobs],
        pods=[lean_pod(p) for p in observed.pods],
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(observed_states())
def test_reconcile_decides_the_same_on_lean_objects(observed: Observed) -> None:
    full = full_state(observed)
    lean = lean_state(full)
    assert reconcile(lean) == reconcile(full)
    for pods in (full.pods, lean.pods):
        assert all(status.pod_index(p) is not None for p in pods)
    assert [status.pod_signal(p) for p in lean.pods] == [status.pod_signal(p) for p in full.pods]
    assert [status.job_signal(j) for j in lean.attempt_jobs] == [
        status.job_signal(j) for j in full.attempt_jobs
    ]
    assert status.first_failure(lean.pods) == status.first_failure(full.pods)
    assert status.chief_pod(lean.pods) == (
        None if status.chief_pod(full.pods) is None else lean_pod(status.chief_pod(full.pods) or {})
    )


def test_a_lean_pod_is_a_small_part_of_the_full_one() -> None:
    from test_operator_reconcile import failed_pod

    full = noisy(failed_pod(0, 1, 137, "OOMKilled"), POD_NOISE)
    lean = lean_pod(full)
    assert len(json.dumps(lean)) < len(json.dumps(full)) / 3
    assert "spec" not in lean and "managedFields" not in lean["metadata"]
    assert lean["metadata"]["labels"] == {
        k: v for k, v in full["metadata"]["labels"].items() if k.startswith("tftj.dev/")
    }
    assert [c["name"] for c in lean["status"]["containerStatuses"]] == ["trainer"]


def test_lean_pods_share_their_strings() -> None:
    """Pods parsed from separate watch events hold one copy of each key and short value."""
    from test_operator_reconcile import failed_pod

    text = json.dumps(noisy(failed_pod(0, 1, 137, "OOMKilled"), POD_NOISE))
    first, second = lean_pod(json.loads(text)), lean_pod(json.loads(text))
    key_of = {id(k) for k in first["status"]}
    assert key_of == {id(k) for k in second["status"]}
    assert first["status"]["phase"] is second["status"]["phase"]
    kept = {c["type"] for c in first["status"]["conditions"]}
    assert kept <= {"Ready", "PodScheduled", "DisruptionTarget"}
