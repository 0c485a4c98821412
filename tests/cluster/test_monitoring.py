"""The monitoring bundle against the real thing: a real Prometheus (Debian's) scrapes a real
trainer process (the way the chart's PodMonitor does, honorLabels) and the real operator (the
way its ServiceMonitor does) while the operator runs jobs on the local control plane; then
every expression of the Grafana dashboard and every alert's signal must return series, and
every alert expression must be accepted by the server."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterkit import EXIT_CODE_LABEL, Kubectl, wait_for
from devoperator import OperatorProcess, training_job
from tftj import monitoring
from tftj.api.contract import ExitCode

from tests.trainer.conftest import PYTHON, free_port, trainer_env, write_params

PROMETHEUS = "/usr/bin/prometheus"
TIMEOUT = 180


def query(port: int, expr: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return dict(json.loads(reply.read()))
    except urllib.error.HTTPError as exc:  # a bad expression: 400 with the parser's error
        return dict(json.loads(exc.read()))
    except OSError as exc:
        return {"status": "unreachable", "error": str(exc)}


@pytest.fixture
def trainer(tmp_path: Path) -> Iterator[int]:
    """A real worker training long enough to be scraped; its metrics port."""
    params = write_params(
        tmp_path, "scraped", {"training": {"epochs": 1000}, "logging": {"frequency": 2}}
    )
    port = free_port()
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "tftj_trainer",
            f"--params={params}",
            f"--storage-root={tmp_path / 'store'}",
            f"--metrics-port={port}",
            "--metrics-address=127.0.0.1",
            f"--termination-log={tmp_path / 'termination'}",
        ],
        env=trainer_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield port
    process.kill()
    process.wait()


@pytest.fixture
def prometheus(tmp_path: Path, trainer: int, operator: OperatorProcess) -> Iterator[int]:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        # As the chart's PodMonitor: the trainer's `job` label is kept, and
                        # the Prometheus operator adds namespace and pod.
                        "job_name": "tftj-workers",
                        "honor_labels": True,
                        "static_configs": [
                            {
                                "targets": [f"127.0.0.1:{trainer}"],
                                "labels": {"namespace": "ml", "pod": "scraped-a0-0"},
                            }
                        ],
                    },
                    {
                        "job_name": "tftj-operator",
                        "static_configs": [{"targets": [f"127.0.0.1:{operator.metrics_port}"]}],
                    },
                ],
            }
        )
    )
    server = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield port
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def concrete(expr: str) -> str:
    """The dashboard's template variables as Grafana's "All" sends them."""
    for variable, value in monitoring.dashboard_variable_values().items():
        expr = expr.replace(variable, value)
    return expr


def test_every_dashboard_and_alert_query_returns_series(k: Kubectl, prometheus: int) -> None:
    # Operator activity: an admission, reconciles, a running and a failed job.
    k.apply(training_job("watched", replicas=1, run_seconds=None, pod_labels={}))
    k.apply(
        training_job(
            "broken",
            replicas=1,
            run_seconds=None,
            pod_labels={EXIT_CODE_LABEL: str(int(ExitCode.BAD_DATA))},
        )
    )
    wait_for(
        lambda: (k.get("tftj", "broken").get("status") or {}).get("phase") == "Failed",
        60,
        message="job broken Failed",
    )

    pending = dict(monitoring.queries())

    def all_answer() -> bool:
        for name, expr in list(pending.items()):
            reply = query(prometheus, concrete(expr))
            if reply.get("status") == "success" and reply["data"]["result"]:
                del pending[name]
        return not pending

    wait_for(
        all_answer,
        TIMEOUT,
        message=lambda: "series for: " + "; ".join(f"{n}: {e}" for n, e in pending.items()),
    )
    # The full alert expressions are valid PromQL for this server (firing or not).
    for alert in monitoring.ALERTS:
        reply = query(prometheus, alert.expr)
        assert reply.get("status") == "success", (alert.name, reply)
    # The failed job's alert fires on the real series.
    failed_alert = next(a for a in monitoring.ALERTS if a.name == "TFTrainingJobFailed")
    failed = query(prometheus, failed_alert.expr)["data"]["result"]
    assert [r["metric"]["name"] for r in failed] == ["broken"]
