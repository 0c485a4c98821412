"""Helpers for tests that talk to the local control plane through the real kubectl.

Imported by tests/cluster (whose conftest puts ``testbin/`` on ``sys.path``)::

    from clusterkit import Kubectl, wait_for, job_manifest, pod_manifest

What lives here: a namespaced ``Kubectl`` runner returning ``CompletedProcess``,
polling (``wait_for``, re-exported from localcluster) and small manifest builders
that know the kwok Stage contract (run-seconds, hold, exit-code). Nothing here
sleeps for a fixed time.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from localcluster import (
    EXIT_CODE_LABEL,
    HOLD_LABEL,
    RUN_SECONDS_ANNOTATION,
    ClusterError,
    LocalCluster,
    child_env,
    find_kubectl,
    wait_for,
)

__all__ = [
    "EXIT_CODE_LABEL",
    "HOLD_LABEL",
    "RUN_SECONDS_ANNOTATION",
    "Kubectl",
    "KubectlError",
    "job_manifest",
    "job_status",
    "pod_manifest",
    "prebound_volume",
    "wait_for",
    "wait_job_phase",
]

#: Any image name works (kwok never pulls); this one names no registry on purpose.
FAKE_IMAGE = "tftj-testbin/fake:latest"


class KubectlError(ClusterError):
    """kubectl exited non-zero where success was expected."""


class Kubectl:
    """Run the real kubectl against one cluster, in one default namespace.

    ``kubectl("get", "pods")`` runs ``kubectl --kubeconfig=K --namespace=N get pods``
    and returns the ``CompletedProcess`` (text mode). ``check=True`` (default) raises
    KubectlError with stderr on a non-zero exit; pass ``check=False`` to assert on a
    rejection yourself. Cluster-scoped commands simply ignore the namespace.
    """

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str],
        namespace: str | None = None,
        binary: str | os.PathLike[str] | None = None,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.namespace = namespace
        self.binary = Path(binary) if binary else find_kubectl()

    @classmethod
    def for_cluster(cls, cluster: LocalCluster, namespace: str | None = None) -> Kubectl:
        return cls(cluster.kubeconfig, namespace)

    def with_namespace(self, namespace: str | None) -> Kubectl:
        return Kubectl(self.kubeconfig, namespace, self.binary)

    def __call__(
        self,
        *args: str,
        input: str | Mapping[str, Any] | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl; ``input`` may be YAML/JSON text or a manifest dict (sent as JSON)."""
        cmd = [str(self.binary), f"--kubeconfig={self.kubeconfig}"]
        if self.namespace:
            cmd.append(f"--namespace={self.namespace}")
        cmd += args
        text = json.dumps(input) if isinstance(input, Mapping) else input
        proc = subprocess.run(
            cmd, input=text, capture_output=True, text=True, timeout=timeout, env=child_env()
        )
        if check and proc.returncode != 0:
            raise KubectlError(
                f"`kubectl {' '.join(args)}` exited {proc.returncode}:\n"
                f"stderr: {proc.stderr.strip()}\nstdout: {proc.stdout.strip()}"
            )
        return proc

    def apply(
        self, manifest: str | Mapping[str, Any], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl apply -f -`` of a manifest (dict, or YAML text with one or more documents)."""
        return self("apply", "-f", "-", input=manifest, check=check)

    def create(
        self, manifest: str | Mapping[str, Any], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl create -f -`` (fails if the object exists, unlike apply)."""
        return self("create", "-f", "-", input=manifest, check=check)

    def json(self, *args: str) -> Any:
        """``kubectl <args> -o json``, parsed."""
        return json.loads(self(*args, "-o", "json").stdout)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        """One object as a dict."""
        return dict(self.json("get", kind, name))

    def items(self, kind: str, *selectors: str) -> list[dict[str, Any]]:
        """``kubectl get KIND [selectors...]`` items, e.g. ``items("pods", "-l", "job-name=x")``."""
        return list(self.json("get", kind, *selectors)["items"])

    def wait_for(self, predicate: Any, timeout: float = 60, message: str = "condition") -> Any:
        """Shortcut for ``clusterkit.wait_for`` (same arguments)."""
        return wait_for(predicate, timeout, message=message)


def condition(obj: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    """The status condition of ``type_`` on an object, or None."""
    for cond in obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def job_status(k: Kubectl, name: str) -> dict[str, Any]:
    """The status of TFTrainingJob ``name`` ({} before the operator wrote one)."""
    return dict(k.get("tftj", name).get("status") or {})


def wait_job_phase(k: Kubectl, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
    """Poll TFTrainingJob ``name`` until its phase is ``phase``; return that status."""

    def reached() -> dict[str, Any] | None:
        status = job_status(k, name)
        return status if status.get("phase") == phase else None

    found = wait_for(
        reached,
        timeout,
        message=lambda: f"{name} phase {phase}, status now: {job_status(k, name)}",
    )
    assert found is not None  # wait_for returns only truthy values
    return found


def pod_manifest(
    name: str,
    *,
    gpus: int = 0,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    security_context: Mapping[str, Any] | None = None,
    pod_security_context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A one-container pod. ``gpus`` sets ``nvidia.com/gpu`` (requests == limits, as
    extended resources require)."""
    container: dict[str, Any] = {"name": "main", "image": FAKE_IMAGE}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    if security_context:
        container["securityContext"] = dict(security_context)
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
    if pod_security_context:
        spec["securityContext"] = dict(pod_security_context)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
        },
        "spec": spec,
    }


def job_manifest(
    name: str,
    *,
    completions: int = 1,
    parallelism: int | None = None,
    indexed: bool = False,
    gpus: int = 0,
    run_seconds: float | None = None,
    pod_labels: Mapping[str, str] | None = None,
    backoff_limit: int = 0,
) -> dict[str, Any]:
    """A batch/v1 Job whose pods follow the kwok contract.

    ``run_seconds`` becomes the ``testbin.tftj.dev/run-seconds`` annotation (kwok
    completes the pod after it; default 1 s); ``pod_labels`` can carry HOLD_LABEL or
    EXIT_CODE_LABEL.
    """
    annotations = {RUN_SECONDS_ANNOTATION: str(run_seconds)} if run_seconds is not None else {}
    pod = pod_manifest("unused", gpus=gpus, labels=pod_labels, annotations=annotations)
    spec: dict[str, Any] = {
        "completions": completions,
        "parallelism": parallelism if parallelism is not None else completions,
        "backoffLimit": backoff_limit,
        "template": {
            "metadata": {k: v for k, v in pod["metadata"].items() if k != "name"},
            "spec": pod["spec"],
        },
    }
    if indexed:
        spec["completionMode"] = "Indexed"
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def dump_yaml(*docs: Mapping[str, Any]) -> str:
    """Multi-document YAML for ``kubectl apply -f -``."""
    return yaml.safe_dump_all([dict(d) for d in docs], sort_keys=False)


def prebound_volume(k: Kubectl, claim: str) -> str:
    """A 1Gi hostPath PersistentVolume reserved (claimRef) for claim ``claim`` of ``k``'s
    namespace: this cluster has no provisioner. Returns the volume's name."""
    pv = f"{k.namespace}-{claim}"[:63]
    k.with_namespace(None).apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "hostPath": {"path": f"/tmp/{pv}"},
                "claimRef": {"namespace": k.namespace, "name": claim},
                "persistentVolumeReclaimPolicy": "Delete",
            },
        }
    )
    return pv
