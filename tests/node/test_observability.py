"""What a user watches while a job trains on the real node: the job's TensorBoard pod serves
the run's scalars over HTTP. (Prometheus over the worker pods: test_prometheus.py.)"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from clusterkit import Kubectl, wait_for
from tftj.operator.children import LABEL_ROLE

from .test_training import digits_job

TIMEOUT = 600


def get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as reply:
            return str(reply.read().decode())
    except OSError:
        return None


def test_tensorboard_serves_the_scalars(k: Kubectl) -> None:
    k.apply(digits_job("board", epochs=200, storage={"size": "1Gi"}, tensorboard={"enabled": True}))

    def board_ip() -> str | None:
        pods = k.items("pods", "-l", f"tftj.dev/job-name=board,{LABEL_ROLE}=tensorboard")
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return running[0]["status"].get("podIP") if running else None

    ip = wait_for(board_ip, TIMEOUT, message="the TensorBoard pod running")

    def loss_scalars() -> list[Any] | None:
        tags = json.loads(get(f"http://{ip}:6006/data/plugin/scalars/tags") or "{}")
        for run, run_tags in tags.items():
            for tag in run_tags:
                if "loss" in tag:
                    query_string = urllib.parse.urlencode({"run": run, "tag": tag})
                    text = get(f"http://{ip}:6006/data/plugin/scalars/scalars?{query_string}")
                    points = json.loads(text) if text else []
                    if points:
                        return list(points)
        return None

    points = wait_for(loss_scalars, TIMEOUT, message="loss scalars from TensorBoard over HTTP")
    # [wall_time, step, value] triples of the training the chief logged on the volume.
    assert all(len(p) == 3 and p[2] > 0 for p in points)
