"""TensorBoard output of the chief: scalars per logging.frequency steps and per epoch, and the
run's resolved parameters through the HParams plugin so runs can be compared side by side.

Layout (what TensorBoard shows as runs):  <logs>/                hparams_config (experiment)
                                          <logs>/<run>/          hp.hparams (this run's values)
                                          <logs>/<run>/train     batch_* and epoch_* scalars
                                          <logs>/<run>/validation  epoch_* scalars
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp
from tftj.api.resolve import ResolvedParameters

HPARAM_SECTIONS = ("training", "model", "data")


def flat_hparams(params: ResolvedParameters) -> dict[str, bool | int | float | str]:
    """Resolved training/model/data values as `training.learningRate: 0.001` (HParams accepts
    only scalars: lists become their JSON text), plus the derived values and the hash."""
    dumped = params.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    flat: dict[str, bool | int | float | str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        elif isinstance(value, list):
            flat[prefix] = json.dumps(value)
        else:
            flat[prefix] = value

    for section in HPARAM_SECTIONS:
        walk(section, dumped[section])
    derived = params.derived.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key, value in derived.items():
        flat[f"derived.{key}"] = value
    flat["parametersHash"] = params.parameters_hash
    return flat


def run_name(params: ResolvedParameters) -> str:
    """Runs are named after the job: a restarted attempt appends to the same curves."""
    return params.job.name


class SummaryLogger:
    """Writes the chief's summaries. Only the chief constructs one."""

    def __init__(self, logdir: Path, params: ResolvedParameters, metric_names: list[str]) -> None:
        self.run_dir = logdir / run_name(params)
        self.train = tf.summary.create_file_writer(str(self.run_dir / "train"))
        self.validation = tf.summary.create_file_writer(str(self.run_dir / "validation"))
        self._write_hparams(logdir, params, metric_names)

    def _write_hparams(self, logdir: Path, params: ResolvedParameters, names: list[str]) -> None:
        values = flat_hparams(params)
        metrics = [
            hp.Metric(f"epoch_{name}", group=group, display_name=f"{group} {name}")
            for name in names
            for group in ("train", "validation")
        ]
        with tf.summary.create_file_writer(str(logdir)).as_default():
            hp.hparams_config(hparams=[hp.HParam(k) for k in values], metrics=metrics)
        with tf.summary.create_file_writer(str(self.run_dir)).as_default():
            hp.hparams(values, trial_id=run_name(params))

    def steps(self, step: int, values: Mapping[str, float]) -> None:
        """batch_<name> values (running epoch means), learning_rate, examples_per_second."""
        with self.train.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name if name in PLAIN_TAGS else f"batch_{name}", value)

    def epoch(self, epoch: int, train: Mapping[str, float],
              validation: Mapping[str, float]) -> None:
        for writer, values in ((self.train, train), (self.validation, validation)):
            with writer.as_default(step=epoch):
                for name, value in values.items():
                    tf.summary.scalar(name if name in PLAIN_TAGS else f"epoch_{name}", value)
            writer.flush()

    def close(self) -> None:
        self.train.close()
        self.validation.close()


# Tags that are not per-batch running means keep their own name.
PLAIN_TAGS = frozenset({"learning_rate", "examples_per_second"})
