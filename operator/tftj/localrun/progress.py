"""Training progress read from the chief's /metrics (the same series the operator reads)."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from tftj.api import contract as c


@dataclass(frozen=True)
class Progress:
    epoch: int
    epochs: int
    step: int
    steps: int | None
    loss: float | None
    examples_per_second: float | None
    eta_seconds: float | None
    resumed_from_epoch: int
    values: dict[str, float]  # "validation loss", "train accuracy", ... as last published


def parse_progress(text: str) -> Progress | None:
    """Progress from an exposition text; None before the trainer has published its targets."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    named: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            split = sample.labels.get("split")
            if sample.name == c.METRIC_LOSS:
                named[f"{split} loss"] = float(sample.value)
                if split != "train":
                    continue
            elif sample.name == c.METRIC_VALUE:
                named[f"{split} {sample.labels.get('name')}"] = float(sample.value)
            values[sample.name] = float(sample.value)
    if c.METRIC_EPOCHS_TARGET not in values:
        return None
    steps = values.get("tftj_trainer_steps_target")
    return Progress(
        epoch=int(values.get(c.METRIC_EPOCH, 0)),
        epochs=int(values[c.METRIC_EPOCHS_TARGET]),
        step=int(values.get(c.METRIC_STEP, 0)),
        steps=int(steps) if steps else None,
        loss=values.get(c.METRIC_LOSS),
        examples_per_second=values.get(c.METRIC_EXAMPLES_PER_SECOND),
        eta_seconds=values.get(c.METRIC_ETA_SECONDS),
        resumed_from_epoch=int(values.get(c.METRIC_RESUMED_EPOCH, 0)),
        values=named,
    )


def read_progress(port: int, timeout: float = 1.0) -> Progress | None:
    """The chief's progress, or None while its /metrics is not up yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as reply:
            return parse_progress(reply.read().decode())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_line(p: Progress, width: int = 20) -> str:
    """`[#######-------------] epoch 3/10 step 120/400 loss 0.4312 5,120 ex/s ETA 0:00:12`"""
    done = p.step / p.steps if p.steps else p.epoch / max(1, p.epochs)
    filled = min(width, int(done * width))
    parts = [
        f"[{'#' * filled}{'-' * (width - filled)}]",
        f"epoch {p.epoch}/{p.epochs}",
        f"step {p.step}/{p.steps}" if p.steps else f"step {p.step}",
    ]
    if p.loss is not None:
        parts.append(f"loss {p.loss:.4f}")
    if p.examples_per_second is not None:
        parts.append(f"{p.examples_per_second:,.0f} ex/s")
    if p.eta_seconds is not None:
        parts.append(f"ETA {duration(p.eta_seconds)}")
    return " ".join(parts)


def summary_line(p: Progress) -> str:
    """`epoch 20/20: train loss 0.0353, validation accuracy 0.9722, ...`"""
    shown = ", ".join(f"{name} {value:.4f}" for name, value in sorted(p.values.items()))
    return f"epoch {p.epoch}/{p.epochs}: {shown}"
