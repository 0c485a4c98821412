"""Training progress read from a trainer's Prometheus /metrics: one reader for all.

`tftj run` draws its progress bar from it and the operator fills status.progress from it; both
read the series named in tftj.api.contract, through read_trainer_progress. Metric keys follow the Keras naming users know:
`accuracy` is the training value, `val_accuracy` the validation one, `val_loss` likewise; the
training loss has its own field.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import math
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from tftj.api import contract

log = logging.getLogger("tftj")

# A trainer's /metrics is a few KiB; anything this large is not one.
MAX_METRICS_BYTES = 1_000_000


@dataclass(frozen=True)
class TrainerProgress:
    epoch: int
    epochs: int
    step: int
    steps: int | None
    loss: float | None
    examples_per_second: float | None
    eta_seconds: float | None
    resumed_from_epoch: int
    metrics: dict[str, float] = field(default_factory=dict)

    def to_status(self) -> dict[str, Any]:
        """The wire form of status.progress (without updateTime, which the operator stamps)."""
        status: dict[str, Any] = {
            "epoch": self.epoch,
            "totalEpochs": self.epochs,
            "step": self.step,
            "metrics": dict(sorted(self.metrics.items())),
        }
        if self.loss is not None:
            status["loss"] = self.loss
        if self.examples_per_second is not None:
            status["examplesPerSecond"] = round(self.examples_per_second, 3)
        if self.eta_seconds is not None:
            status["etaSeconds"] = round(self.eta_seconds)
        return status


def _metric_key(name: str, split: str) -> str:
    return f"val_{name}" if split == "validation" else name


def parse_trainer_metrics(text: str) -> TrainerProgress | None:
    """Progress from exposition text; None when it holds no trainer targets yet (not started).

    Raises ValueError on text that is not the Prometheus exposition format. Non-finite samples
    (a diverged loss) are left out rather than passed on as NaN.
    """
    # Imported here: prometheus_client is not needed by `tftj validate` and friends.
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    metrics: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            value = float(sample.value)
            if not math.isfinite(value) or not sample.name.startswith(contract.METRIC_PREFIX):
                continue
            split = sample.labels.get("split", "train")
            if sample.name == contract.METRIC_LOSS:
                if split != "train":
                    metrics[_metric_key("loss", split)] = value
                    continue
            elif sample.name == contract.METRIC_VALUE and "name" in sample.labels:
                metrics[_metric_key(sample.labels["name"], split)] = value
                continue
            values[sample.name] = value
    # The trainer creates its series at 0 before it knows the plan: epochs 0 is "not started"
    # (a job trains at least one epoch), and a rate of 0 is "not measured yet", as is the ETA
    # that would come from it.
    if values.get(contract.METRIC_EPOCHS_TARGET, 0) <= 0:
        return None
    steps = values.get(contract.METRIC_STEPS_TARGET)
    rate = values.get(contract.METRIC_EXAMPLES_PER_SECOND) or None
    return TrainerProgress(
        epoch=int(values.get(contract.METRIC_EPOCH, 0)),
        epochs=int(values[contract.METRIC_EPOCHS_TARGET]),
        step=int(values.get(contract.METRIC_STEP, 0)),
        steps=int(steps) if steps else None,
        loss=values.get(contract.METRIC_LOSS),
        examples_per_second=rate,
        eta_seconds=values.get(contract.METRIC_ETA_SECONDS) if rate else None,
        resumed_from_epoch=int(values.get(contract.METRIC_RESUMED_EPOCH, 0)),
        metrics=metrics,
    )


def read_trainer_progress(host: str, port: int, timeout: float) -> TrainerProgress | None:
    """A worker's progress from http://host:port/metrics, or None when it cannot be read now.

    Best-effort by contract: progress is a courtesy, so whatever goes wrong (connection
    refused, a half-written or garbled answer, an http.client protocol error, an answer slower
    than `timeout` in total) gives None, and the caller keeps what it had.
    """
    try:
        body = _get(host, port, "/metrics", timeout, MAX_METRICS_BYTES)
        return parse_trainer_metrics(body.decode("utf-8", "replace"))
    except Exception as exc:
        log.debug("progress of %s:%s not readable: %r", host, port, exc)
        return None


def _get(host: str, port: int, path: str, timeout: float, limit: int) -> bytes:
    """The complete body of a 200 answer to GET `path`, read within `timeout` in all.

    A socket timeout bounds each read, not the answer: a peer that sends a byte at a time
    would hold the caller for as long as it likes. A timer shuts the socket down at the
    deadline instead, which fails whatever read is under way.
    """
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    deadline = threading.Timer(timeout, _shut, (conn,))
    deadline.start()
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
        body = resp.read(limit + 1)
        # A body cut short at a line boundary still parses, as older or missing values:
        # only a complete one counts.
        if resp.length:
            raise http.client.IncompleteRead(body, resp.length)
        if len(body) > limit:
            raise ValueError(f"larger than {limit} bytes")
        return body
    finally:
        deadline.cancel()
        conn.close()


def _shut(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
