"""A real Prometheus finds the worker pods through the Kubernetes API and reads their loss.

The scrape config is not written by hand: it is the chart's PodMonitor (rendered by helm with
``metrics.podMonitor.enabled``) translated the way the Prometheus Operator translates it
(testbin/podprometheus.py) — kubernetes_sd role pod against the apiserver with a
ServiceAccount token allowed to read pods, relabeling that keeps the PodMonitor's selection.
So a chart selector that stopped matching the worker pods, a renamed metrics port or a
broken honorLabels would fail here, with the operator's pod (which also has a port named
``metrics``) and the job's TensorBoard pod present to be wrongly selected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chartoperator import ChartOperator
from clusterkit import Kubectl, wait_for
from localcluster import LocalCluster
from podprometheus import (
    PrometheusServer,
    meta_label,
    pod_monitor_scrape_configs,
    pod_reader_token,
    revoke_pod_reader,
)
from tftj.api.contract import METRIC_LOSS
from tftj.operator.children import LABEL_ROLE

from .test_training import digits_job

TIMEOUT = 600


@pytest.fixture
def prometheus(
    cluster: LocalCluster,
    operator: ChartOperator,
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
) -> Iterator[PrometheusServer]:
    """Prometheus on the host, scraping what the chart's PodMonitor selects."""
    (monitor,) = [
        doc
        for doc in operator.template(
            "metrics.podMonitor.enabled=true", "metrics.podMonitor.interval=1s"
        )
        if doc["kind"] == "PodMonitor"
    ]
    token = tmp_path / "token"
    token.write_text(pod_reader_token(kubectl, namespace))
    kubernetes = {
        "api_server": cluster.server,
        "tls_config": {"ca_file": str(cluster.ca_file)},
        "authorization": {"credentials_file": str(token)},
    }
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "scrape_configs": pod_monitor_scrape_configs(monitor, kubernetes),
    }
    server = PrometheusServer(cluster.bin_dir / "prometheus", tmp_path / "prometheus")
    try:
        server.start(config)
        yield server
    finally:
        server.stop()
        revoke_pod_reader(kubectl, namespace)


def test_prometheus_discovers_the_workers_and_queries_their_loss(
    k: Kubectl, namespace: str, prometheus: PrometheusServer
) -> None:
    k.apply(
        digits_job("watched", epochs=200, storage={"size": "1Gi"}, tensorboard={"enabled": True})
    )

    def running_workers() -> dict[str, str]:
        pods = k.items("pods", "-l", f"tftj.dev/job-name=watched,{LABEL_ROLE}=worker")
        ips = {p["metadata"]["name"]: p["status"].get("podIP") for p in pods}
        phases = {p["status"].get("phase") for p in pods}
        return ips if len(pods) == 2 and phases == {"Running"} and all(ips.values()) else {}

    workers = wait_for(running_workers, TIMEOUT, message="two Running worker pods")

    def up_targets() -> list[dict[str, Any]]:
        targets = prometheus.active_targets()
        ours = [t for t in targets if t["labels"].get("namespace") == namespace]
        healthy = {t["labels"].get("pod") for t in ours if t["health"] == "up"}
        return targets if healthy == set(workers) and len(ours) == 2 else []

    targets = wait_for(
        up_targets,
        TIMEOUT,
        message=lambda: (
            f"both workers as healthy targets: {prometheus.active_targets()}\n{prometheus.logs()}"
        ),
    )
    # Discovered through the API and scraped on the pods' own IPs and named metrics port.
    (container,) = k.get("pod", next(iter(workers)))["spec"]["containers"]
    metrics_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "metrics")
    ours = {t["labels"]["pod"]: t["scrapeUrl"] for t in targets if t["labels"]["pod"] in workers}
    assert ours == {name: f"http://{ip}:{metrics_port}/metrics" for name, ip in workers.items()}
    # The selection: only worker pods, never the operator's pod (its port is also named
    # `metrics`) nor the job's TensorBoard pod.
    role_label = f"__meta_kubernetes_pod_label_{meta_label(LABEL_ROLE)}"
    roles = {t["discoveredLabels"].get(role_label) for t in targets}
    assert roles == {"worker"}, targets
    assert not [t for t in targets if t["labels"].get("namespace") == "tftj-system"]

    # PromQL: the training loss of this job, per worker (honorLabels kept the trainer's `job`).
    expr = f'{METRIC_LOSS}{{namespace="{namespace}",job="watched",split="train"}}'

    def loss() -> list[dict[str, Any]]:
        series = prometheus.query(expr)
        return series if {s["metric"].get("pod") for s in series} == set(workers) else []

    series = wait_for(loss, TIMEOUT, message=lambda: f"{expr}: {prometheus.query(expr)}")
    assert {s["metric"]["worker"] for s in series} == {"0", "1"}
    assert all(float(s["value"][1]) > 0 for s in series), series
