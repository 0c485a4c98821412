"""Every worker's /metrics: contract names, promtool-clean, scraped by a real Prometheus."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tftj.api import contract

from tests.trainer.conftest import (
    free_port,
    last_line,
    trainer_command,
    trainer_env,
    wait_for,
    write_params,
)

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


def get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.read().decode()
    except OSError:
        return None


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A lone worker training long enough to be scraped; stopped by the test."""
    params = write_params(
        tmp_path,
        "scraped",
        {
            "training": {"epochs": 1000},
            "logging": {"frequency": 2},
        },
    )
    port = free_port()
    (tmp_path / "tmp").mkdir()
    process = subprocess.Popen(
        trainer_command(
            params,
            tmp_path / "store",
            "--metrics-address",
            "127.0.0.1",
            "--termination-log",
            str(tmp_path / "termination"),
            metrics_port=port,
        ),
        env={**trainer_env(), "TMPDIR": str(tmp_path / "tmp")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """Prometheus on loopback with a temp config and TSDB; the test writes its scrape target."""
    config = tmp_path / "prometheus.yml"
    port = free_port()
    yield config, port


def start_prometheus(config: Path, port: int, target: str, data: Path) -> subprocess.Popen[bytes]:
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: tftj\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    return subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_prometheus_scrapes_the_loss_and_sigterm_stops_cleanly(
    worker: tuple[subprocess.Popen[str], int],
    prometheus: tuple[Path, int],
    tmp_path: Path,
) -> None:
    process, port = worker
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    names = (
        contract.METRIC_EPOCH,
        contract.METRIC_EPOCHS_TARGET,
        contract.METRIC_STEP,
        contract.METRIC_LOSS,
        contract.METRIC_VALUE,
        contract.METRIC_LEARNING_RATE,
        # Published once a rate was measured: a few steps after the first loss.
        contract.METRIC_EXAMPLES_PER_SECOND,
        contract.METRIC_ETA_SECONDS,
        contract.METRIC_STEP_DURATION + "_bucket",
        contract.METRIC_CHECKPOINTS,
        contract.METRIC_ATTEMPT,
        contract.METRIC_RESUMED_EPOCH,
    )
    last: list[str] = [""]

    def all_served() -> str | None:
        last[0] = get(metrics_url) or ""
        served = 'split="train"' in last[0] and all(f"\n{n}{{" in last[0] for n in names)
        return last[0] if served else None

    try:
        text = wait_for(all_served, 90, "the worker to publish its training metrics")
    except AssertionError:
        missing = [n for n in names if f"\n{n}{{" not in last[0]]
        raise AssertionError(f"never served: {missing}") from None
    assert 'job="scraped",worker="0"' in text.replace(", ", ",")
    lint = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr

    config, prom_port = prometheus
    server = start_prometheus(config, prom_port, f"127.0.0.1:{port}", tmp_path / "tsdb")
    try:
        query = urllib.parse.urlencode({"query": f'{contract.METRIC_LOSS}{{split="train"}}'})
        url = f"http://127.0.0.1:{prom_port}/api/v1/query?{query}"

        def loss_result() -> list | None:
            body = get(url)
            return json.loads(body)["data"]["result"] if body else None

        (series,) = wait_for(loss_result, 60, "Prometheus to return the scraped loss", 0.25)
        assert series["metric"]["job"] == "tftj"  # Prometheus' job label wins; ours is kept
        assert series["metric"]["exported_job"] == "scraped"
        assert series["metric"]["worker"] == "0"
        assert float(series["value"][1]) > 0
    finally:
        server.terminate()
        server.wait(timeout=30)

    # SIGTERM (pod deletion, Ctrl-C in tftj run): stop at a step boundary, exit "preempted".
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == contract.ExitCode.PREEMPTED, err
    assert last_line(err).startswith("tftj-trainer: error: stopped by signal 15")
    assert "Traceback" not in err
    # Nothing left in TMPDIR (autograph's sources are removed only at exit, which the
    # worker's os._exit skips: it cleans its own directory instead).
    assert not list((tmp_path / "tmp").iterdir())
