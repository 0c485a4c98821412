"""Training progress parsed from a trainer's Prometheus /metrics text: one parser for all readers.

`tftj run` draws its progress bar from it and the operator fills status.progress from it; both
read the series named in tftj.api.contract. Metric keys follow the Keras naming users know:
`accuracy` is the training value, `val_accuracy` the validation one, `val_loss` likewise; the
training loss has its own field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tftj.api import contract


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
    if contract.METRIC_EPOCHS_TARGET not in values:
        return None
    steps = values.get(contract.METRIC_STEPS_TARGET)
    return TrainerProgress(
        epoch=int(values.get(contract.METRIC_EPOCH, 0)),
        epochs=int(values[contract.METRIC_EPOCHS_TARGET]),
        step=int(values.get(contract.METRIC_STEP, 0)),
        steps=int(steps) if steps else None,
        loss=values.get(contract.METRIC_LOSS),
        examples_per_second=values.get(contract.METRIC_EXAMPLES_PER_SECOND),
        eta_seconds=values.get(contract.METRIC_ETA_SECONDS),
        resumed_from_epoch=int(values.get(contract.METRIC_RESUMED_EPOCH, 0)),
        metrics=metrics,
    )
