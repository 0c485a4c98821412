"""Prometheus /metrics of one worker, named per tftj.api.contract (the operator reads them)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from tftj.api import contract as c

# Step durations of small CPU MLPs are milliseconds; GPU models of interest reach seconds.
STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class StepDurations(Collector):
    """The step-duration histogram, observed on every step at the cost of a bisect and two adds.

    prometheus_client's Histogram takes a lock per bucket and per sum and checks its state on
    every observe() (~5 us, measurable at millisecond steps). Here only the training thread
    writes plain counters and a scrape reads a copy: every step is still counted in its own
    bucket (real per-step durations, not window averages); a scrape that lands mid-step may see
    the sum one step ahead of the counts.
    """

    def __init__(
        self, name: str, documentation: str, labels: Mapping[str, str], buckets: Sequence[float]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = list(labels)
        self.label_values = list(labels.values())
        self.bounds = [float(b) for b in buckets]
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1  # le: value <= bound
        self.sum += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        counts, total = list(self.counts), self.sum
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)
        # floatToGoString is how prometheus_client spells `le` itself; it is unannotated.
        uppers = [*(floatToGoString(b) for b in self.bounds), "+Inf"]  # type: ignore[no-untyped-call]
        family.add_metric(
            self.label_values, list(zip(uppers, accumulate(counts), strict=True)), total
        )
        yield family


class TrainerMetrics:
    """Every series this worker exports; all labelled with job and worker index."""

    def __init__(self, job: str, worker: int) -> None:
        self.registry = CollectorRegistry()
        self.labels = {"job": job, "worker": str(worker)}
        names = ["job", "worker"]
        r = self.registry
        self.epoch = Gauge(c.METRIC_EPOCH, "Epochs completed.", names, registry=r)
        self.epochs_target = Gauge(c.METRIC_EPOCHS_TARGET, "Epochs to train.", names, registry=r)
        self.step = Gauge(c.METRIC_STEP, "Global optimizer steps completed.", names, registry=r)
        self.steps_target = Gauge(
            c.METRIC_STEPS_TARGET, "Optimizer steps to train.", names, registry=r
        )
        self.loss = Gauge(
            c.METRIC_LOSS,
            "Latest loss (train: running mean of the epoch).",
            [*names, "split"],
            registry=r,
        )
        self.metric = Gauge(
            c.METRIC_VALUE,
            "Latest value of a training metric.",
            [*names, "name", "split"],
            registry=r,
        )
        self.learning_rate = Gauge(
            c.METRIC_LEARNING_RATE, "Current learning rate.", names, registry=r
        )
        self.examples_per_second = Gauge(
            c.METRIC_EXAMPLES_PER_SECOND, "Recent global training throughput.", names, registry=r
        )
        self.eta = Gauge(
            c.METRIC_ETA_SECONDS, "Estimated seconds until training completes.", names, registry=r
        )
        self.step_duration = StepDurations(
            c.METRIC_STEP_DURATION,
            "Wall time of one training step (or stepsPerExecution steps).",
            self.labels,
            STEP_BUCKETS,
        )
        r.register(self.step_duration)
        self.checkpoints = Counter(
            c.METRIC_CHECKPOINTS, "Checkpoints saved by this process.", names, registry=r
        )
        self.attempt = Gauge(
            c.METRIC_ATTEMPT, "Attempt (0-based) this process runs in.", names, registry=r
        )
        self.resumed_from_epoch = Gauge(
            c.METRIC_RESUMED_EPOCH,
            "Epoch restored from the checkpoint at start.",
            names,
            registry=r,
        )
        self.info = Gauge(
            c.METRIC_INFO,
            "Constant 1; labels describe the run.",
            [*names, "parameters_hash", "strategy"],
            registry=r,
        )
        # Labelled series exist only once touched: publish every unsplit one at 0 from the
        # start, so scrapers (and the operator) see the full set before the first step.
        for family in (
            self.epoch,
            self.epochs_target,
            self.step,
            self.steps_target,
            self.checkpoints,
            self.attempt,
            self.resumed_from_epoch,
        ):
            family.labels(**self.labels)

    def serve(self, port: int, address: str = "0.0.0.0") -> int:
        """Start /metrics in a daemon thread; returns the bound port (port 0 picks one)."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return int(server.server_port)

    def set_run(
        self, *, attempt: int, epochs: int, steps: int, parameters_hash: str, strategy: str
    ) -> None:
        self.attempt.labels(**self.labels).set(attempt)
        self.epochs_target.labels(**self.labels).set(epochs)
        self.steps_target.labels(**self.labels).set(steps)
        self.info.labels(**self.labels, parameters_hash=parameters_hash, strategy=strategy).set(1)

    def set_progress(
        self,
        *,
        step: int,
        learning_rate: float | None = None,
        examples_per_second: float | None = None,
        eta_seconds: float | None = None,
    ) -> None:
        self.step.labels(**self.labels).set(step)
        if learning_rate is not None:
            self.learning_rate.labels(**self.labels).set(learning_rate)
        if examples_per_second is not None:
            self.examples_per_second.labels(**self.labels).set(examples_per_second)
        if eta_seconds is not None:
            self.eta.labels(**self.labels).set(eta_seconds)

    def set_values(self, values: Mapping[str, float], split: str) -> None:
        """Loss and metrics by schema name (`loss`, `accuracy`, `top-5-accuracy`, ...)."""
        for name, value in values.items():
            if name == "loss":
                self.loss.labels(**self.labels, split=split).set(value)
            else:
                self.metric.labels(**self.labels, name=name, split=split).set(value)

    def set_epoch(self, epoch: int) -> None:
        self.epoch.labels(**self.labels).set(epoch)

    def set_resumed(self, epoch: int) -> None:
        self.resumed_from_epoch.labels(**self.labels).set(epoch)
        self.epoch.labels(**self.labels).set(epoch)

    def checkpoint_saved(self) -> None:
        self.checkpoints.labels(**self.labels).inc()
