"""Control-plane faults while jobs are being created and run: the apiserver restarted, etcd
restarted (with and without the apiserver), the webhook unreachable, the operator cut off from
the apiserver for longer than its watch timeouts. Each ends with every job converged, one
worker Job per attempt, nothing half-created. docs/reliability.md has the repeated runs
(bench/faults_bench.py); here each fault runs once.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from clusterfixtures import session_cluster
from clusterkit import Kubectl, wait_for
from devoperator import (
    WEBHOOK_CONFIG,
    OperatorProcess,
    start_for_tests,
    stop_for_tests,
    training_job,
)
from localcluster import HOLD_LABEL, LocalCluster
from tcpforward import Forwarder

#: Jobs per burst: 20 in `make test` (sized for CI); bench/faults_bench.py sets the issue's 50.
BURST = int(os.environ.get("TFTJ_FAULT_BURST", "20"))
TIMEOUT = 180 * max(1.0, BURST / 20)


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """This module's own control plane: its tests stop and restart etcd, the apiserver and
    kwok, and a fault that is not recovered must fail these tests only, not leave the
    session's cluster broken for every later one. Costs one cluster start (~10-20 s)."""
    yield from session_cluster(request, "Build them with `make testbin`.")


@pytest.fixture
def operator(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """Per test: these tests stop the operator or the control plane under it."""
    proc = start_for_tests(cluster.kubeconfig, tmp_path_factory.mktemp("operator"))
    yield proc
    stop_for_tests(proc)


def apply_jobs(k: Kubectl, names: list[str], **options: Any) -> None:
    items = [training_job(n, **options) for n in names]
    # One admission review per job: 50 of them on a loaded machine outlast kubectl's usual 120 s.
    k(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        timeout=TIMEOUT,
    )


def worker_jobs(k: Kubectl) -> list[dict[str, Any]]:
    return k.items("jobs", "-l", "tftj.dev/job-name")


def wait_all_succeeded(k: Kubectl, names: list[str], timeout: float = TIMEOUT) -> None:
    def done() -> bool:
        phases = {
            i["metadata"]["name"]: (i.get("status") or {}).get("phase") for i in k.items("tftj")
        }
        return all(phases.get(n) == "Succeeded" for n in names)

    wait_for(done, timeout, message=lambda: k("get", "tftj", check=False).stdout)


def assert_converged_once(k: Kubectl, names: list[str]) -> None:
    """Every job Succeeded on its first attempt: no restart, exactly one worker Job (-a0)
    and its two pods, one params ConfigMap; the status matches the spec's generation."""
    jobs = Counter(j["metadata"]["name"] for j in worker_jobs(k))
    assert jobs == {f"{n}-a0": 1 for n in names}, "one worker Job per TFTrainingJob"
    pods = Counter(
        p["metadata"]["labels"]["tftj.dev/job-name"]
        for p in k.items("pods", "-l", "tftj.dev/job-name")
    )
    assert pods == dict.fromkeys(names, 2), "two workers each, none duplicated"
    configmaps = Counter(
        c["metadata"]["name"] for c in k.items("configmaps", "-l", "tftj.dev/job-name")
    )
    assert configmaps == {f"{n}-params": 1 for n in names}
    for item in k.items("tftj"):
        status = item["status"]
        assert (status["phase"], status["attempt"], status["restarts"]) == ("Succeeded", 0, 0)
        assert status["observedGeneration"] == item["metadata"]["generation"]


def assert_same_operator(operator: OperatorProcess) -> None:
    assert operator.process is not None and operator.process.poll() is None, (
        f"the operator exited:\n{operator.logs()}"
    )


def some_started(k: Kubectl) -> bool:
    return len(worker_jobs(k)) > 0


def test_apiserver_restarted_mid_burst(
    k: Kubectl, operator: OperatorProcess, cluster: LocalCluster
) -> None:
    first = [f"api-{i}" for i in range(BURST)]
    later = [f"api-late-{i}" for i in range(max(1, BURST // 4))]
    apply_jobs(k, first, run_seconds=3)
    wait_for(lambda: some_started(k), 60, interval=0.05, message="the first worker Job")
    cluster.restart_component("kube-apiserver")
    # More jobs as soon as it answers again: they must not wait for a resync.
    wait_for(lambda: apply_jobs(k, later, run_seconds=1) is None, 60, message="apply after restart")
    wait_all_succeeded(k, first + later)
    assert_converged_once(k, first + later)
    assert_same_operator(operator)


@pytest.mark.parametrize("with_apiserver", [False, True], ids=["etcd", "etcd+apiserver"])
def test_etcd_restarted_mid_burst(
    k: Kubectl, operator: OperatorProcess, cluster: LocalCluster, with_apiserver: bool
) -> None:
    names = [f"etcd-{i}" for i in range(BURST)]
    apply_jobs(k, names, run_seconds=3)
    wait_for(lambda: some_started(k), 60, interval=0.05, message="the first worker Job")
    if with_apiserver:
        cluster.stop_component("kube-apiserver")
    # SIGKILL: etcd gets no chance to flush or say goodbye; its data dir is kept.
    cluster.stop_component("etcd", sig=9)
    cluster.start_component("etcd")
    if with_apiserver:
        cluster.start_component("kube-apiserver")
    # kwok is the simulated kubelet: a pod status write it lost to the outage is never sent
    # again (seen: 2 of 40 pods left Pending on their node for good), where a real kubelet's
    # periodic status sync would repair it. Restarting kwok re-lists its pods and plays their
    # stages again: the kubelet's resync, so what is tested stays the operator's recovery.
    cluster.restart_component("kwok")
    wait_all_succeeded(k, names)
    assert_converged_once(k, names)
    assert_same_operator(operator)


def test_webhook_unreachable_refuses_then_accepts(
    k: Kubectl, operator: OperatorProcess, cluster: LocalCluster
) -> None:
    operator.stop()  # the webhook goes with it; its registration (failurePolicy Fail) stays
    proc = k("apply", "-f", "-", input=json.dumps(training_job("while-down")), check=False)
    assert proc.returncode != 0
    # kubectl prints the apiserver's reason: which webhook, and that it could not be reached.
    assert 'failed calling webhook "validate.tftrainingjobs.tftj.dev"' in proc.stderr
    assert "connection refused" in proc.stderr
    assert k("get", "tftj", "while-down", check=False).returncode != 0, "nothing half-created"
    assert k.items("configmaps", "-l", "tftj.dev/job-name") == []
    assert worker_jobs(k) == []

    operator.process = None
    operator.webhook_port = operator.metrics_port = operator.liveness_port = 0
    operator.start(die_with_parent=True)
    k("apply", "-f", "-", input=json.dumps(training_job("after-return")))
    wait_all_succeeded(k, ["after-return"])


def test_without_the_webhook_cel_still_guards_the_schema_and_the_operator_the_rest(
    k: Kubectl, operator: OperatorProcess
) -> None:
    """The decision documented in docs/reliability.md: with the webhook bypassed (its
    registration deleted, or failurePolicy Ignore while it is down) the CRD's structural
    schema and CEL rules still refuse what they express; the cross-field rules only
    validate() knows are enforced by the operator, which refuses to start such a job."""
    operator.admin("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIG)
    csv_without_path = training_job("cel")
    csv_without_path["spec"]["data"] = {"format": "csv"}
    proc = k("apply", "-f", "-", input=json.dumps(csv_without_path), check=False)
    assert proc.returncode != 0 and "spec.data.path" in proc.stderr, proc.stderr
    assert k("get", "tftj", "cel", check=False).returncode != 0

    # requests above limits: quantities CEL here does not compare; only validate() refuses it.
    over_limit = training_job("rules")
    over_limit["spec"]["workers"]["resources"] = {"requests": {"cpu": "4"}, "limits": {"cpu": "2"}}
    k("apply", "-f", "-", input=json.dumps(over_limit))

    def refused_by_operator() -> dict[str, Any] | None:
        conditions = (k.get("tftj", "rules").get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c.get("reason") == "InvalidSpec"), None)

    created = wait_for(refused_by_operator, 60, message="the Created=False/InvalidSpec condition")
    assert "spec.workers.resources.requests.cpu: must not exceed limits.cpu" in created["message"]
    assert worker_jobs(k) == [], "no worker started for a spec the rules refuse"


def test_operator_partitioned_longer_than_its_watch_timeouts_recovers(
    kubectl: Kubectl, cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The operator reaches the apiserver only through a forwarder this test owns (see
    testbin/tcpforward.py for why not a netns); the partition drops packets silently.
    (`kubectl`, not `k`: `k` would start a second, directly connected operator.)"""
    k = kubectl
    forwarder = Forwarder(int(cluster.server.rsplit(":", 1)[1])).start()
    watch_timeout = 6
    operator = start_for_tests(
        cluster.kubeconfig,
        tmp_path_factory.mktemp("operator"),
        [f"--watch-timeout-seconds={watch_timeout}", "--api-timeout-seconds=5"],
        api_server=forwarder.url,
    )
    try:
        held = ["held-0", "held-1"]
        apply_jobs(k, held, run_seconds=None, pod_labels={HOLD_LABEL: "true"})
        for name in held:
            wait_for(
                lambda n=name: k.get("tftj", n).get("status", {}).get("phase") == "Running",
                60,
                message=f"{name} Running",
            )
        forwarder.partition()
        # While cut off: a job is created (the webhook is still reachable from the apiserver)
        # and the held workers are released, so they finish behind the operator's back.
        apply_jobs(k, ["during"], run_seconds=1)
        k("label", "pods", "-l", "tftj.dev/job-name", f"{HOLD_LABEL}-")
        # Partitioned for longer than the watch timeouts: the operator gave up on its silent
        # watches (and requests) and tried to connect again, more than once.
        wait_for(
            lambda: forwarder.accepted_while_partitioned >= 3,
            watch_timeout * 10,
            message="the operator to time out its watches and reconnect",
        )
        assert k.get("tftj", "during").get("status") is None, "it really was cut off"
        forwarder.heal()
        wait_all_succeeded(k, [*held, "during"], timeout=120)
        assert_converged_once(k, [*held, "during"])
        assert_same_operator(operator)
    finally:
        stop_for_tests(operator)
        forwarder.close()
