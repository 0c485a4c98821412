"""A TFTrainingJob's life on the real control plane, driven and read through the real kubectl.

The operator runs as a subprocess under its ServiceAccount (RBAC from
charts/tftj/files/operator-rbac-rules.yaml only); kwok plays the workers: a pod finishes after
its run-seconds annotation, stays up with the hold label, fails with the exit-code label.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from clusterkit import EXIT_CODE_LABEL, HOLD_LABEL, Kubectl, wait_for
from clusterkit import job_status as status
from clusterkit import wait_job_phase as wait_phase
from devoperator import OperatorProcess, training_job
from tftj.api.contract import ExitCode

TIMEOUT = 60


def cond(k: Kubectl, name: str, type_: str) -> dict[str, Any]:
    for c in status(k, name).get("conditions") or []:
        if c["type"] == type_ and c["status"] == "True":
            return dict(c)
    return {}


def worker_pods(k: Kubectl, name: str, attempt: int | None = None) -> list[dict[str, Any]]:
    selector = f"tftj.dev/job-name={name}"
    if attempt is not None:
        selector += f",tftj.dev/attempt={attempt}"
    return k.items("pods", "-l", selector)


def test_lifecycle_to_succeeded_with_wait_describe_and_children(k: Kubectl) -> None:
    k.apply(training_job("life", replicas=2, run_seconds=2))
    # `kubectl wait` on the Succeeded condition is how a pipeline waits for training.
    done = k("wait", "--for=condition=Succeeded", "tftj/life", f"--timeout={TIMEOUT}s")
    assert "condition met" in done.stdout
    st = status(k, "life")
    assert st["phase"] == "Succeeded" and st["completionTime"] and st["startTime"]
    assert st["replicas"]["succeeded"] == 2 and st["attempt"] == 0 and st["restarts"] == 0
    assert "replicasInSync=2" in st["resolvedParameters"]["derived"].split()
    assert st["observedGeneration"] == 1

    job = k.get("jobs", "life-a0")
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 2
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TFTrainingJob"
    cm = k.get("configmap", "life-params")
    assert st["parametersHash"] in cm["data"]["params.yaml"]
    svc = k.get("service", "life-workers")
    assert svc["spec"]["clusterIP"] == "None"

    described = k("describe", "tftrainingjob", "life").stdout
    assert "Resolved Parameters" in described and "effectiveLearningRate=" in described
    assert "Succeeded" in described
    events = k(
        "get",
        "events",
        "--field-selector=involvedObject.name=life",
        "-o",
        "jsonpath={.items[*].reason}",
    ).stdout.split()
    assert "AttemptCreated" in events and "TrainingSucceeded" in events
    listed = k("get", "tftj").stdout
    assert "life" in listed and "Succeeded" in listed


def test_explain_shows_field_docs(k: Kubectl) -> None:
    out = k("explain", "tftj.spec.training").stdout
    assert "GLOBAL batch size" in out and "learningRate" in out


def test_retryable_failure_restarts_all_workers(k: Kubectl) -> None:
    k.apply(training_job("retry", replicas=2, run_seconds=None, pod_labels={HOLD_LABEL: "true"}))
    wait_phase(k, "retry", "Running")
    pod = next(
        p for p in worker_pods(k, "retry", 0) if p["metadata"]["name"].startswith("retry-a0-1")
    )
    k("label", "pod", pod["metadata"]["name"], f"{EXIT_CODE_LABEL}={int(ExitCode.PEER_LOST)}")
    st = wait_for(
        lambda: (s := status(k, "retry")).get("restarts") == 1 and s, TIMEOUT, message="restarts=1"
    )
    assert st["lastFailure"]["exitCode"] == 10 and st["lastFailure"]["workerIndex"] == 1
    assert st["lastFailure"]["reason"] == "Retryable" and st["lastFailure"]["attempt"] == 0
    # The new attempt runs with a fresh Job; the old one is gone, nothing mixes.
    wait_phase(k, "retry", "Running")
    assert k("get", "job", "retry-a0", check=False).returncode != 0
    pods = worker_pods(k, "retry")
    assert {p["metadata"]["labels"]["tftj.dev/attempt"] for p in pods} == {"1"}
    env = {
        e["name"]: e.get("value")
        for e in k.get("job", "retry-a1")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["TFTJ_ATTEMPT"] == "1"
    assert "retry-a1-0.retry-workers:2222" in env["TFTJ_WORKER_HOSTS"]


def test_permanent_failure_fails_with_last_failure(k: Kubectl) -> None:
    k.apply(
        training_job(
            "perm",
            replicas=2,
            run_seconds=None,
            pod_labels={EXIT_CODE_LABEL: str(int(ExitCode.BAD_DATA))},
        )
    )
    st = wait_phase(k, "perm", "Failed")
    assert st["restarts"] == 0 and st["lastFailure"]["exitCode"] == 4
    assert st["lastFailure"]["reason"] == "Permanent"
    failed = cond(k, "perm", "Failed")
    assert failed["reason"] == "PermanentFailure" and "BAD_DATA" in failed["message"]


def test_backoff_limit_exhausted(k: Kubectl) -> None:
    k.apply(
        training_job(
            "backoff",
            replicas=1,
            run_seconds=None,
            pod_labels={EXIT_CODE_LABEL: "137"},
            runPolicy={"backoffLimit": 1},
        )
    )
    st = wait_phase(k, "backoff", "Failed")
    assert st["restarts"] == 1 and st["attempt"] == 1
    assert cond(k, "backoff", "Failed")["reason"] == "BackoffLimitExceeded"


def test_suspend_and_resume(k: Kubectl) -> None:
    k.apply(training_job("susp", replicas=2, run_seconds=None, pod_labels={HOLD_LABEL: "true"}))
    wait_phase(k, "susp", "Running")
    k("patch", "tftj", "susp", "--type=merge", "-p", '{"spec":{"runPolicy":{"suspend":true}}}')
    wait_phase(k, "susp", "Suspended")
    wait_for(lambda: not worker_pods(k, "susp"), TIMEOUT, message="workers stopped")
    k("patch", "tftj", "susp", "--type=merge", "-p", '{"spec":{"runPolicy":{"suspend":false}}}')
    st = wait_phase(k, "susp", "Running")
    assert st["restarts"] == 0 and st["attempt"] == 1


def test_active_deadline_fails_and_stops_workers(k: Kubectl) -> None:
    k.apply(
        training_job(
            "deadline",
            replicas=2,
            run_seconds=None,
            pod_labels={HOLD_LABEL: "true"},
            runPolicy={"activeDeadlineSeconds": 3},
        )
    )
    wait_phase(k, "deadline", "Failed")
    assert cond(k, "deadline", "Failed")["reason"] == "DeadlineExceeded"
    wait_for(lambda: not worker_pods(k, "deadline"), TIMEOUT, message="workers stopped")


def test_ttl_deletes_the_finished_job(k: Kubectl) -> None:
    k.apply(
        training_job("ttl", replicas=1, run_seconds=1, runPolicy={"ttlSecondsAfterFinished": 2})
    )
    wait_for(
        lambda: k("get", "tftj", "ttl", check=False).returncode != 0,
        TIMEOUT,
        message="the job deleted by its TTL",
    )


def test_delete_removes_every_child(k: Kubectl) -> None:
    k.apply(training_job("gone", replicas=2, run_seconds=None, pod_labels={HOLD_LABEL: "true"}))
    wait_phase(k, "gone", "Running")
    k("delete", "tftj", "gone", "--wait=false")

    def children() -> str:
        return k(
            "get", "jobs,pods,configmaps,services", "-l", "tftj.dev/job-name=gone", "-o", "name"
        ).stdout.strip()

    wait_for(
        lambda: children() == "", TIMEOUT, message=lambda: f"children gone, left: {children()}"
    )


def test_unschedulable_worker_is_pending_with_the_schedulers_reason(k: Kubectl) -> None:
    # batchSize must divide by the 9 replicas in sync (the webhook says so otherwise).
    k.apply(training_job("huge", replicas=1, gpus=9, training={"batchSize": 36}))

    def reason() -> dict[str, Any]:
        c = cond(k, "huge", "Pending")
        return c if c.get("reason") == "Unschedulable" else {}

    pending = wait_for(reason, TIMEOUT, message="Pending/Unschedulable")
    assert "Insufficient nvidia.com/gpu" in pending["message"]
    assert status(k, "huge")["gpus"] == 9


def test_workers_pass_pod_security_restricted(k: Kubectl, namespace: str) -> None:
    k(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "--overwrite",
    )
    k.apply(training_job("secure", replicas=2, gpus=1, run_seconds=1))
    wait_phase(k, "secure", "Succeeded")


class _Metrics(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


TRAINER_METRICS = b"""\
# HELP tftj_trainer_epoch Epochs completed
# TYPE tftj_trainer_epoch gauge
tftj_trainer_epoch{job="prog",worker="0"} 3
# TYPE tftj_trainer_epochs_target gauge
tftj_trainer_epochs_target{job="prog",worker="0"} 10
# TYPE tftj_trainer_step gauge
tftj_trainer_step{job="prog",worker="0"} 384
# TYPE tftj_trainer_loss gauge
tftj_trainer_loss{job="prog",split="train",worker="0"} 0.4242
tftj_trainer_loss{job="prog",split="validation",worker="0"} 0.5
# TYPE tftj_trainer_metric gauge
tftj_trainer_metric{job="prog",name="accuracy",split="train",worker="0"} 0.875
tftj_trainer_metric{job="prog",name="accuracy",split="validation",worker="0"} 0.81
# TYPE tftj_trainer_examples_per_second gauge
tftj_trainer_examples_per_second{job="prog",worker="0"} 1234.5
# TYPE tftj_trainer_eta_seconds gauge
tftj_trainer_eta_seconds{job="prog",worker="0"} 42
"""


def test_progress_is_read_from_the_chiefs_metrics(k: Kubectl) -> None:
    k.apply(
        training_job(
            "prog",
            replicas=2,
            run_seconds=None,
            pod_labels={HOLD_LABEL: "true"},
            metrics={"port": 19400},
        )
    )
    wait_phase(k, "prog", "Running")
    chief = next(
        p
        for p in worker_pods(k, "prog", 0)
        if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0"
    )
    ip = chief["status"]["podIP"]
    assert ip.startswith("127."), f"pod IPs must be loopback for this test, got {ip}"
    _Metrics.body = TRAINER_METRICS
    server = http.server.ThreadingHTTPServer((ip, 19400), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        progress = wait_for(lambda: status(k, "prog").get("progress"), TIMEOUT, message="progress")
    finally:
        server.shutdown()
        server.server_close()
    assert progress["epoch"] == 3 and progress["totalEpochs"] == 10 and progress["step"] == 384
    assert progress["loss"] == pytest.approx(0.4242)
    assert progress["metrics"] == {"accuracy": 0.875, "val_accuracy": 0.81, "val_loss": 0.5}
    assert progress["examplesPerSecond"] == pytest.approx(1234.5) and progress["etaSeconds"] == 42


def test_operator_runs_as_its_serviceaccount(operator: OperatorProcess) -> None:
    kubeconfig = Path(operator.state_dir) / "operator.kubeconfig"
    who = subprocess.run(
        [
            operator.admin.binary,
            f"--kubeconfig={kubeconfig}",
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert who == "system:serviceaccount:tftj-system:tftj-operator"


def test_operator_metrics_endpoint(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(training_job("counted", replicas=1, run_seconds=1))
    k("wait", "--for=condition=Succeeded", "tftj/counted", f"--timeout={TIMEOUT}s")

    def scrape() -> str:
        url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def counted() -> str:
        text = scrape()
        return "" if 'tftj_operator_jobs{phase="Succeeded"} 0.0' in text else text

    text = wait_for(counted, TIMEOUT, message="a Succeeded job counted")
    for name in (
        "tftj_operator_reconcile_duration_seconds_count",
        "tftj_operator_restarts_total",
        "tftj_operator_admission_requests_total",
        "tftj_operator_errors_total",
        "tftj_operator_work_queue_depth",
    ):
        assert name in text, name
    assert 'tftj_operator_admission_requests_total{operation="CREATE",result="allowed"}' in text
