"""status.progress from the chief worker's Prometheus /metrics text (tftj.api.contract names).

Metric values follow the Keras naming users know: `accuracy` is the training value,
`val_accuracy` the validation one; `val_loss` goes with the other metrics, `loss` has its own
field.
"""

from __future__ import annotations

import math
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tftj.api import contract


def _key(name: str, split: str) -> str:
    return f"val_{name}" if split == "validation" else name


def parse_progress(text: str) -> dict[str, Any] | None:
    """Progress (status wire form, without updateTime) or None when the text has no trainer
    metrics (e.g. the chief has not started training yet). Raises ValueError on text that is
    not the Prometheus exposition format."""
    values: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    found = False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            value = float(sample.value)
            if not math.isfinite(value):
                continue
            name, labels = sample.name, sample.labels
            if not name.startswith(contract.METRIC_PREFIX):
                continue
            found = True
            if name == contract.METRIC_EPOCH:
                values["epoch"] = int(value)
            elif name == contract.METRIC_EPOCHS_TARGET:
                values["totalEpochs"] = int(value)
            elif name == contract.METRIC_STEP:
                values["step"] = int(value)
            elif name == contract.METRIC_LOSS:
                split = labels.get("split", "train")
                if split == "train":
                    values["loss"] = value
                else:
                    metrics[_key("loss", split)] = value
            elif name == contract.METRIC_VALUE and "name" in labels:
                metrics[_key(labels["name"], labels.get("split", "train"))] = value
            elif name == contract.METRIC_EXAMPLES_PER_SECOND:
                values["examplesPerSecond"] = round(value, 3)
            elif name == contract.METRIC_ETA_SECONDS:
                values["etaSeconds"] = round(value)
    if not found:
        return None
    values["metrics"] = dict(sorted(metrics.items()))
    return values
