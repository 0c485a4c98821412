"""Smoke tests of the local control plane, through the real kubectl.

Each test checks something a user of a real cluster would notice: nodes and GPU
capacity, the scheduler, the Job controller, garbage collection, Pod Security
admission, CRD CEL validation, admission webhooks over TLS, and the kwok Stage
contract (run-seconds, hold, exit-code) the operator tests build on.
"""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterkit import (
    EXIT_CODE_LABEL,
    HOLD_LABEL,
    Kubectl,
    condition,
    job_manifest,
    pod_manifest,
    wait_for,
)
from localcluster import LocalCluster, free_port, issue_cert, make_ca, pem_cert, pem_key

GPU = "nvidia.com/gpu"


def _pod_phase(kubectl: Kubectl, name: str) -> str:
    return str(kubectl.get("pod", name).get("status", {}).get("phase", ""))


def _job_pods(kubectl: Kubectl, job: str) -> list[dict[str, Any]]:
    return kubectl.items("pods", "-l", f"job-name={job}")


def test_nodes_are_ready_with_gpu_capacity(kubectl: Kubectl) -> None:
    nodes = {n["metadata"]["name"]: n for n in kubectl.items("nodes")}
    gpu_nodes = [n for n in nodes.values() if GPU in n["status"].get("allocatable", {})]
    cpu_nodes = [n for n in nodes.values() if GPU not in n["status"].get("allocatable", {})]

    assert len(gpu_nodes) >= 2
    assert len(cpu_nodes) >= 1
    for node in gpu_nodes:
        assert node["status"]["allocatable"][GPU] == "8"
        assert node["status"]["capacity"][GPU] == "8"
    for node in nodes.values():
        ready = condition(node, "Ready")
        assert ready is not None and ready["status"] == "True", node["metadata"]["name"]
    # What `kubectl get nodes` shows a user.
    table = kubectl("get", "nodes").stdout
    assert table.count(" Ready ") >= 3


def test_indexed_gpu_job_is_scheduled_runs_and_completes(kubectl: Kubectl) -> None:
    kubectl.apply(job_manifest("train", completions=2, indexed=True, gpus=1, run_seconds=3))

    # Both workers run at once, each on a node that has GPUs.
    running = wait_for(
        lambda: (
            [p for p in _job_pods(kubectl, "train") if p["status"].get("phase") == "Running"]
            if len(
                [p for p in _job_pods(kubectl, "train") if p["status"].get("phase") == "Running"]
            )
            == 2
            else None
        ),
        timeout=60,
        message="2 running pods of job train",
    )
    for pod in running:
        assert pod["spec"]["nodeName"].startswith("kwok-gpu-")
        assert pod["status"]["podIP"]
        assert condition(pod, "Ready")["status"] == "True"  # type: ignore[index]
    indexes = sorted(
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in running
    )
    assert indexes == ["0", "1"]

    kubectl("wait", "--for=condition=Complete", "job/train", "--timeout=60s")
    job = kubectl.get("job", "train")
    assert job["status"]["succeeded"] == 2
    for pod in _job_pods(kubectl, "train"):
        assert pod["status"]["phase"] == "Succeeded"
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 0
        assert terminated["reason"] == "Completed"


def test_pod_asking_for_more_gpus_than_any_node_stays_pending(kubectl: Kubectl) -> None:
    kubectl.apply(pod_manifest("too-big", gpus=9))

    def unschedulable() -> dict[str, Any] | None:
        cond = condition(kubectl.get("pod", "too-big"), "PodScheduled")
        return cond if cond and cond.get("reason") == "Unschedulable" else None

    cond = wait_for(unschedulable, timeout=60, message="PodScheduled=False/Unschedulable")
    assert cond["status"] == "False"
    assert f"Insufficient {GPU}" in cond["message"]
    pod = kubectl.get("pod", "too-big")
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")


def test_deleting_a_job_garbage_collects_its_pods(kubectl: Kubectl) -> None:
    kubectl.apply(job_manifest("doomed", completions=2, pod_labels={HOLD_LABEL: "true"}))
    wait_for(
        lambda: (
            len([p for p in _job_pods(kubectl, "doomed") if p["status"].get("phase") == "Running"])
            == 2
        ),
        timeout=60,
        message="2 running pods of job doomed",
    )

    kubectl("delete", "job", "doomed")

    wait_for(
        lambda: _job_pods(kubectl, "doomed") == [],
        timeout=60,
        message="pods of job doomed to be deleted",
    )
    assert kubectl("get", "job", "doomed", check=False).returncode != 0


def test_restricted_namespace_rejects_privileged_pod(kubectl: Kubectl, namespace: str) -> None:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")

    rejected = kubectl.apply(
        pod_manifest("privileged", security_context={"privileged": True}), check=False
    )
    assert rejected.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in rejected.stderr
    assert "privileged" in rejected.stderr

    # The same namespace accepts a pod that meets the restricted profile.
    compliant = pod_manifest(
        "compliant",
        pod_security_context={
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        security_context={"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    )
    kubectl.apply(compliant)


@pytest.fixture
def widget_crd(cluster: LocalCluster) -> Iterator[str]:
    """A namespaced CRD with a CEL rule; a unique group so tests never share it."""
    group = f"w{secrets.token_hex(3)}.smoke.testbin.tftj.dev"
    name = f"widgets.{group}"
    admin = Kubectl.for_cluster(cluster)
    admin.apply(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {
                                            "minReplicas": {"type": "integer", "minimum": 0},
                                            "maxReplicas": {"type": "integer", "minimum": 0},
                                        },
                                        "x-kubernetes-validations": [
                                            {
                                                "rule": "self.minReplicas <= self.maxReplicas",
                                                "message": "minReplicas must not exceed maxReplicas",
                                            }
                                        ],
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        }
    )
    admin("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    yield group
    admin("delete", "crd", name, "--wait=false", check=False)


def test_crd_cel_rule_rejects_bad_object(kubectl: Kubectl, widget_crd: str) -> None:
    def widget(name: str, lo: int, hi: int) -> dict[str, Any]:
        return {
            "apiVersion": f"{widget_crd}/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"minReplicas": lo, "maxReplicas": hi},
        }

    # kubectl's discovery may lag the new CRD for a moment: retry the valid object.
    wait_for(
        lambda: kubectl.apply(widget("good", 1, 3), check=False).returncode == 0,
        timeout=30,
        message="the valid Widget to be accepted",
    )

    rejected = kubectl.apply(widget("bad", 5, 2), check=False)
    assert rejected.returncode != 0
    assert "minReplicas must not exceed maxReplicas" in rejected.stderr
    assert kubectl("get", f"widgets.{widget_crd}", "bad", check=False).returncode != 0


class _WebhookServer:
    """A tiny HTTPS admission webhook on 127.0.0.1 with its own CA.

    Denies ConfigMaps whose name starts with "deny-" and records every review.
    """

    def __init__(self) -> None:
        self.reviews: list[dict[str, Any]] = []
        self.ca = make_ca("smoke-webhook-ca")
        serving = issue_cert(self.ca, "smoke-webhook", server=True, ip_addresses=["127.0.0.1"])
        self._dir = tempfile.TemporaryDirectory()
        cert = Path(self._dir.name, "tls.crt")
        key = Path(self._dir.name, "tls.key")
        cert.write_bytes(pem_cert(serving.cert))
        key.write_bytes(pem_key(serving.key))
        reviews = self.reviews

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                review = json.loads(body)
                reviews.append(review)
                request = review["request"]
                name = request.get("name") or request["object"]["metadata"].get("name", "")
                response: dict[str, Any] = {
                    "uid": request["uid"],
                    "allowed": not name.startswith("deny-"),
                }
                if not response["allowed"]:
                    response["status"] = {"code": 403, "message": f"smoke webhook denies {name}"}
                data = json.dumps(
                    {
                        "apiVersion": "admission.k8s.io/v1",
                        "kind": "AdmissionReview",
                        "response": response,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(pem_cert(self.ca.cert)).decode()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._dir.cleanup()


def test_validating_webhook_on_localhost_is_called(kubectl: Kubectl, namespace: str) -> None:
    server = _WebhookServer()
    admin = kubectl.with_namespace(None)
    name = f"smoke-{namespace}"
    try:
        admin.apply(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": name},
                "webhooks": [
                    {
                        "name": "configmaps.smoke.testbin.tftj.dev",
                        "clientConfig": {
                            "url": f"https://127.0.0.1:{server.port}/validate",
                            "caBundle": server.ca_bundle,
                        },
                        "rules": [
                            {
                                "apiGroups": [""],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE"],
                                "resources": ["configmaps"],
                            }
                        ],
                        # Only this test's namespace, so concurrent tests never see it.
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": namespace}
                        },
                        "failurePolicy": "Fail",
                        "sideEffects": "None",
                        "admissionReviewVersions": ["v1"],
                        "timeoutSeconds": 5,
                    }
                ],
            }
        )

        # The apiserver picks up new webhook configurations asynchronously.
        def denied() -> str | None:
            result = kubectl("create", "configmap", f"deny-{secrets.token_hex(2)}", check=False)
            return result.stderr if result.returncode != 0 else None

        stderr = wait_for(denied, timeout=30, message="the webhook to deny a ConfigMap")
        assert "smoke webhook denies deny-" in stderr

        kubectl("create", "configmap", "allowed", "--from-literal=a=b")
        created = [r["request"] for r in server.reviews if r["request"].get("name") == "allowed"]
        assert created, "webhook was not called for the allowed ConfigMap"
        assert created[0]["namespace"] == namespace
        assert created[0]["operation"] == "CREATE"
        assert created[0]["kind"]["kind"] == "ConfigMap"
    finally:
        admin("delete", "validatingwebhookconfiguration", name, "--ignore-not-found", check=False)
        server.close()


def test_exit_code_label_added_at_runtime_fails_the_pod(kubectl: Kubectl) -> None:
    kubectl.apply(pod_manifest("worker"))
    wait_for(
        lambda: _pod_phase(kubectl, "worker") == "Running", timeout=60, message="pod worker Running"
    )

    kubectl("label", "pod", "worker", f"{EXIT_CODE_LABEL}=3")

    wait_for(
        lambda: _pod_phase(kubectl, "worker") == "Failed", timeout=60, message="pod worker Failed"
    )
    terminated = kubectl.get("pod", "worker")["status"]["containerStatuses"][0]["state"][
        "terminated"
    ]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"


def test_exit_code_label_wins_over_hold_and_fails_the_job(kubectl: Kubectl) -> None:
    kubectl.apply(
        job_manifest(
            "crash", pod_labels={HOLD_LABEL: "true", EXIT_CODE_LABEL: "42"}, backoff_limit=0
        )
    )

    kubectl("wait", "--for=condition=Failed", "job/crash", "--timeout=60s")
    job = kubectl.get("job", "crash")
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    (pod,) = _job_pods(kubectl, "crash")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 42


def test_hold_label_keeps_job_pod_running_until_removed(kubectl: Kubectl) -> None:
    kubectl.apply(job_manifest("held", run_seconds=0, pod_labels={HOLD_LABEL: "true"}))
    wait_for(
        lambda: [p for p in _job_pods(kubectl, "held") if p["status"].get("phase") == "Running"],
        timeout=60,
        message="the pod of job held to run",
    )

    # With run-seconds 0 an unheld pod completes at once; held, the Job does not.
    still = kubectl("wait", "--for=condition=Complete", "job/held", "--timeout=3s", check=False)
    assert still.returncode != 0
    (pod,) = _job_pods(kubectl, "held")
    assert pod["status"]["phase"] == "Running"

    kubectl("label", "pod", pod["metadata"]["name"], f"{HOLD_LABEL}-")
    kubectl("wait", "--for=condition=Complete", "job/held", "--timeout=60s")


def test_second_start_is_a_no_op_and_a_crashed_run_is_replaced(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """What `make up` promises: up twice is safe; leftovers of a crash never block."""
    import os
    import signal

    from localcluster import NodeSpec

    other = LocalCluster(tmp_path / "state", nodes=[NodeSpec("solo")], die_with_parent=True)
    try:
        other.start()
        first = other.status()["components"]
        other.start()
        assert other.status()["components"] == first  # same processes, nothing restarted

        # Crash: the apiserver and etcd die, the rest linger with stale state.
        os.kill(first["kube-apiserver"]["pid"], signal.SIGKILL)
        os.kill(first["etcd"]["pid"], signal.SIGKILL)
        wait_for(lambda: not other.running(), timeout=10, message="the cluster to notice the crash")

        other.start()
        again = other.status()
        assert again["running"]
        assert all(c["alive"] for c in again["components"].values())
        assert {c["pid"] for c in again["components"].values()}.isdisjoint(
            c["pid"] for c in first.values()
        )
        assert "solo" in other.kubectl("get", "nodes", "-o", "name").stdout
    finally:
        other.stop()
    assert not (tmp_path / "state").exists()
    for component in again["components"].values():
        stat = Path(f"/proc/{component['pid']}/stat")
        # Gone, or a zombie nobody reaped (containers often lack an init that reaps).
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_deleting_a_running_pod_completes(kubectl: Kubectl) -> None:
    kubectl.apply(pod_manifest("short-lived"))
    wait_for(
        lambda: _pod_phase(kubectl, "short-lived") == "Running",
        timeout=60,
        message="pod short-lived Running",
    )

    # kubectl waits for the deletion to finish, as it does against real kubelets.
    kubectl("delete", "pod", "short-lived", "--timeout=60s")

    assert kubectl("get", "pod", "short-lived", check=False).returncode != 0
