"""TensorBoard output of the chief: scalars per logging.frequency steps and per epoch, and the
run's resolved parameters through the HParams plugin so runs can be compared side by side.

Layout (what TensorBoard shows as runs):  <logs>/                hparams_config (experiment)
                                          <logs>/<run>/          hp.hparams (this run's values)
                                          <logs>/<run>/train     batch_* and epoch_* scalars
                                          <logs>/<run>/validation  epoch_* scalars
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api as hp
from tensorboard.plugins.scalar.summary_v2 import scalar_pb
from tensorboard.summary.writer.event_file_writer import EventFileWriter
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

    Scalars are written as the same events `tf.summary.scalar` writes (a float32 tensor with the
    scalars plugin's metadata, read back as `tensors` by EventAccumulator), but built as protos
    by tensorboard's own writer: ~0.1 ms of CPU per report instead of ~1.5 ms of eager
    TensorFlow ops. The writer's thread does the file I/O, so the loop only hands over events.
    """

    def __init__(
        self, logdir: Path, params: ResolvedParameters, metric_names: Sequence[str]
    ) -> None:
        self.run_dir = logdir / run_name(params)
        self._write_hparams(logdir, params, metric_names)
        self.train = EventFileWriter(str(self.run_dir / "train"))
        self.validation = EventFileWriter(str(self.run_dir / "validation"))

    def _write_hparams(
        self, logdir: Path, params: ResolvedParameters, names: Sequence[str]
    ) -> None:
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

    @staticmethod
    def _write(writer: EventFileWriter, step: int, values: Mapping[str, float]) -> None:
        if not values:
            return
        summary = summary_pb2.Summary(
            value=[v for name, value in values.items() for v in scalar_pb(name, value).value]
        )
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def steps(self, step: int, values: Mapping[str, float]) -> None:
        """batch_<name> values (running epoch means), learning_rate, examples_per_second."""
        self._write(
            self.train, step, {n if n in PLAIN_TAGS else f"batch_{n}": v for n, v in values.items()}
        )

    def epoch(
        self, epoch: int, train: Mapping[str, float], validation: Mapping[str, float]
    ) -> None:
        for writer, values in ((self.train, train), (self.validation, validation)):
            self._write(
                writer,
                epoch,
                {n if n in PLAIN_TAGS else f"epoch_{n}": v for n, v in values.items()},
            )
            writer.flush()

    def close(self) -> None:
        """Write what is queued, then close the files."""
        self.train.close()
        self.validation.close()


# Tags that are not per-batch running means keep their own name.
PLAIN_TAGS = frozenset({"learning_rate", "examples_per_second"})
