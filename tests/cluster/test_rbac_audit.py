"""The operator's RBAC is least privilege: what the apiserver's audit log shows it calling
(testbin/localcluster.py audits tftj-system's ServiceAccounts at Metadata level) is exactly
what charts/tftj/files/operator-rbac-rules.yaml grants: nothing refused, nothing unused, no
wildcard, no Secrets. The test walks every path of the operator that touches the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from clusterkit import EXIT_CODE_LABEL, HOLD_LABEL, Kubectl, prebound_volume, wait_for
from devoperator import (
    LEASE_NAME,
    SERVICE_ACCOUNT,
    SYSTEM_NAMESPACE,
    OperatorProcess,
    leader_args,
    rbac_rules,
    start_for_tests,
    stop_for_tests,
    training_job,
)
from localcluster import LocalCluster
from tftj.api import naming

OPERATOR_USER = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{SERVICE_ACCOUNT}"

# Granted but never a request of the operator's own, so never in an audit log: the apiserver
# checks it on the operator's behalf. blockOwnerDeletion on a child's ownerReference needs
# update on the owner's finalizers where OwnerReferencesPermissionEnforcement is enabled.
AUTHORIZATION_ONLY = {("tftj.dev", "tftrainingjobs/finalizers", "update")}
# Used by the code on a path this test cannot force: the controller reads a job from the
# apiserver only when its watch has not delivered it yet or its cached copy proved stale
# (tftj.operator.kube.Kube.get_job after a Conflict).
# Kueue's Workloads are read only for a job with scheduling.queueName that Kueue holds back
# (why it is Queued): exercised by the Kueue tests, not necessarily by this one.
RARE_PATHS = {
    ("tftj.dev", "tftrainingjobs", "get"),
    ("kueue.x-k8s.io", "workloads", "list"),
}

Permission = tuple[str, str, str]  # apiGroup, resource[/subresource], verb


def granted() -> set[Permission]:
    return {
        (group, resource, verb)
        for rule in rbac_rules()
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def audit_log_size(cluster: LocalCluster) -> int:
    try:
        return cluster.audit_log.stat().st_size
    except FileNotFoundError:
        return 0


def used(cluster: LocalCluster, since: int) -> tuple[set[Permission], list[dict[str, Any]]]:
    """What the operator's ServiceAccount asked for in the audit log after byte offset `since`.

    The log is the whole test session's: earlier modules ran operators under the same account,
    some across apiserver restarts (whose RBAC cache is empty for a moment), so only this
    test's own window says anything about the rules."""
    permissions: set[Permission] = set()
    refused: list[dict[str, Any]] = []
    with cluster.audit_log.open("rb") as log:
        log.seek(since)
        lines = log.read().decode().splitlines()
    for line in lines:
        event = json.loads(line)
        if event["user"]["username"] != OPERATOR_USER or "objectRef" not in event:
            continue
        ref = event["objectRef"]
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        permissions.add((ref.get("apiGroup", ""), resource, event["verb"]))
        if event.get("annotations", {}).get("authorization.k8s.io/decision") == "forbid":
            refused.append(event)
    return permissions, refused


def exercise(k: Kubectl) -> None:
    """A job that uses every child (PVC, TensorBoard), has its children drift and repaired,
    fails and restarts, fails for good and is deleted by its TTL."""
    # storage.size makes the operator create the claim; this cluster has no provisioner, so a
    # hostPath volume waits for it (pre-bound by claimRef).
    prebound_volume(k, naming.storage_claim_name("rbac"))
    job = training_job(
        "rbac",
        run_seconds=None,
        pod_labels={HOLD_LABEL: "true"},
        storage={"size": "1Gi"},
        tensorboard={"enabled": True},
        runPolicy={"backoffLimit": 1},
    )
    k("apply", "-f", "-", input=json.dumps(job))

    def phase() -> str | None:
        return (k.get("tftj", "rbac").get("status") or {}).get("phase")

    wait_for(lambda: phase() == "Running", 60, message="rbac Running")
    for kind in ("configmap/rbac-params", "service/rbac-workers", "deployment/rbac-tensorboard"):
        k("label", kind, "app.kubernetes.io/managed-by=someone-else", "--overwrite")
    # A spec change makes the operator read its children again at once (not after a minute).
    k(
        "patch",
        "tftj",
        "rbac",
        "--type=merge",
        "-p",
        '{"spec":{"runPolicy":{"ttlSecondsAfterFinished":1}}}',
    )

    def repaired() -> bool:
        labels = k.get("configmap", "rbac-params")["metadata"].get("labels") or {}
        return labels.get("app.kubernetes.io/managed-by") != "someone-else"

    wait_for(repaired, 60, message="the drifted children repaired")
    for attempt in (0, 1):
        wait_for(
            lambda a=attempt: (
                len(k.items("pods", "-l", f"tftj.dev/job-name=rbac,tftj.dev/attempt={a}")) == 2
            ),
            60,
            message=f"attempt {attempt} pods",
        )
        k(
            "label",
            "pods",
            "-l",
            f"tftj.dev/job-name=rbac,tftj.dev/attempt={attempt}",
            f"{EXIT_CODE_LABEL}=1",
        )
    wait_for(
        lambda: k("get", "tftj", "rbac", check=False).returncode != 0,
        90,
        message="the failed job deleted by its TTL",
    )


@pytest.fixture
def audit_since(cluster: LocalCluster) -> int:
    """Where this test's part of the session's audit log starts (before its operator starts)."""
    return audit_log_size(cluster)


@pytest.fixture
def elected_operator(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory, audit_since: int
) -> Iterator[OperatorProcess]:
    """The operator as the chart runs it (--leader-elect), with no Lease yet: it creates one."""
    kubectl = Kubectl.for_cluster(cluster, SYSTEM_NAMESPACE)
    kubectl("delete", "lease", LEASE_NAME, "--ignore-not-found", check=False)
    proc = start_for_tests(
        cluster.kubeconfig, tmp_path_factory.mktemp("operator"), leader_args("audit")
    )
    yield proc
    stop_for_tests(proc)


def test_the_operator_uses_exactly_what_its_rules_grant(
    kubectl: Kubectl, cluster: LocalCluster, audit_since: int, elected_operator: OperatorProcess
) -> None:
    k = kubectl
    rules = rbac_rules()
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], f"wildcard in {rule}"
        assert "secrets" not in rule["resources"], f"Secrets access in {rule}"

    exercise(k)
    permissions, refused = used(cluster, audit_since)
    assert refused == [], "the operator was refused something it needs"
    grants = granted()
    assert permissions <= grants, f"used but not granted: {sorted(permissions - grants)}"
    unused = grants - permissions - AUTHORIZATION_ONLY - RARE_PATHS
    assert unused == set(), f"granted but never used: {sorted(unused)}"
