"""TensorBoard output of the chief: scalars per logging.frequency steps and per epoch, and the
run's resolved parameters through the HParams plugin so runs can be compared side by side.

Layout (what TensorBoard shows as runs):  <logs>/                hparams_config (experiment)
                                          <logs>/<run>/          hp.hparams (this run's values)
                                          <logs>/<run>/train     batch_* and epoch_* scalars
                                          <logs>/<run>/validation  epoch_* scalars
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Mapping, Sequence
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
    """Writes the chief's summaries. Only the chief constructs one.

    Writing a scalar costs a few milliseconds of eager TensorFlow ops; a writer thread does it,
    so the training loop only hands over floats (the loop's C++ steps run meanwhile).
    """

    def __init__(self, logdir: Path, params: ResolvedParameters,
                 metric_names: Sequence[str]) -> None:
        self.run_dir = logdir / run_name(params)
        self.train = tf.summary.create_file_writer(str(self.run_dir / "train"))
        self.validation = tf.summary.create_file_writer(str(self.run_dir / "validation"))
        self._write_hparams(logdir, params, metric_names)
        self._queue: queue.SimpleQueue[tuple[Any, int, dict[str, float], bool] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._drain, name="tftj-summaries", daemon=True)
        self._thread.start()

    def _write_hparams(self, logdir: Path, params: ResolvedParameters,
                       names: Sequence[str]) -> None:
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

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            writer, step, values, flush = item
            with writer.as_default(step=step):
                for name, value in values.items():
                    tf.summary.scalar(name, value)
            if flush:
                writer.flush()

    def steps(self, step: int, values: Mapping[str, float]) -> None:
        """batch_<name> values (running epoch means), learning_rate, examples_per_second."""
        tagged = {n if n in PLAIN_TAGS else f"batch_{n}": v for n, v in values.items()}
        self._queue.put((self.train, step, tagged, False))

    def epoch(self, epoch: int, train: Mapping[str, float],
              validation: Mapping[str, float]) -> None:
        for writer, values in ((self.train, train), (self.validation, validation)):
            tagged = {n if n in PLAIN_TAGS else f"epoch_{n}": v for n, v in values.items()}
            self._queue.put((writer, epoch, tagged, True))

    def close(self) -> None:
        """Write what is queued, then close the files."""
        self._queue.put(None)
        self._thread.join()
        self.train.close()
        self.validation.close()


# Tags that are not per-batch running means keep their own name.
PLAIN_TAGS = frozenset({"learning_rate", "examples_per_second"})
