"""The TensorBoard child on the local control plane: with tensorboard.enabled and storage the
operator creates a Deployment and a Service on the job's log directory, owned by the job; the
controller-manager rolls the Deployment out (kwok runs its pod) and the Service selects it, so
`kubectl port-forward svc/<job>-tensorboard 6006` (docs/operations.md) has a target."""

from __future__ import annotations

from typing import Any

from clusterkit import HOLD_LABEL, Kubectl, prebound_volume, wait_for
from devoperator import training_job

TIMEOUT = 60


def bound_claim(k: Kubectl, name: str) -> None:
    """A claim bound to a hostPath volume made for it (this cluster has no provisioner)."""
    pv = prebound_volume(k, name)
    k.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "",
                "volumeName": pv,
            },
        }
    )


def test_tensorboard_deployment_and_service(k: Kubectl) -> None:
    bound_claim(k, "shared")
    job = training_job(
        "tb",
        replicas=1,
        run_seconds=None,
        pod_labels={HOLD_LABEL: "true"},
        tensorboard={"enabled": True},
        storage={"claimName": "shared"},
        logging={"directory": "runs"},
    )
    k.apply(job)
    deployment: dict[str, Any] = wait_for(
        lambda: (
            (d := k.get("deployment", "tb-tensorboard")).get("status", {}).get("availableReplicas")
            == 1
            and d
            if k("get", "deployment", "tb-tensorboard", check=False).returncode == 0
            else None
        ),
        TIMEOUT,
        message="the TensorBoard Deployment rolled out",
    )
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner.get("controller")) == ("TFTrainingJob", "tb", True)
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert container["command"][:3] == ["tensorboard", "--logdir", "/storage/runs"]
    assert {"name": "http", "containerPort": 6006, "protocol": "TCP"} in container["ports"]
    # The claim read-only, and a /tmp emptyDir (the root filesystem is read-only).
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert set(mounts) == {"/storage", "/tmp"} and mounts["/storage"]["readOnly"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod_spec["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["shared"]

    service = k.get("service", "tb-tensorboard")
    assert service["spec"]["ports"][0]["port"] == 6006
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    selector = ",".join(f"{key}={value}" for key, value in service["spec"]["selector"].items())
    pods = k.items("pods", "-l", selector)
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Running"
    assert pods[0]["spec"]["nodeName"]
