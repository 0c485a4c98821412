"""Training and validation data behind one interface, whatever the format.

TFRecord and CSV stream (tftj_trainer.streaming): nothing holds the dataset. npz is an
in-memory format (one NumPy archive is read whole), and synthetic data is generated in memory;
both are held as arrays here, split, checked, and sharded by example or by file.

Every worker computes the same split, counts and normalization statistics, or they would
train different models; each then reads only its shard (per data.shardPolicy).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from tftj.api.models import Data
from tftj.api.resolve import ResolvedParameters

from tftj_trainer.datachecks import first_bad_row
from tftj_trainer.datafiles import expand_paths, read_bytes
from tftj_trainer.exitcodes import DataError
from tftj_trainer.pipeline import batched
from tftj_trainer.statistics import Statistics, statistics_of
from tftj_trainer.streaming import Checks, Holdout, StreamedSplit, layout_of, scan, streamed_files


@dataclass(frozen=True)
class Examples:
    features: npt.NDArray[np.float32]  # [n, num_features]
    labels: npt.NDArray[np.float32]  # [n] or [n, k] (regression with k targets)
    source: npt.NDArray[np.int32]  # [n]: index of the file each example came from

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def take(self, indices: npt.NDArray[np.intp]) -> Examples:
        return Examples(self.features[indices], self.labels[indices], self.source[indices])


def concatenate(parts: Sequence[Examples]) -> Examples:
    widths = {p.features.shape[1] for p in parts}
    if len(widths) > 1:
        raise DataError(f"files have different numbers of features: {sorted(widths)}")
    return Examples(
        np.concatenate([p.features for p in parts]),
        np.concatenate([p.labels for p in parts]),
        np.concatenate([p.source for p in parts]),
    )


# ----------------------------------------------------------------------------------- readers


def read_npz(files: Sequence[str], data: Data) -> Examples:
    """Arrays `featuresKey` [n, d] and `labelKey` [n] or [n, k]."""
    parts = []
    for file_index, path in enumerate(files):
        try:
            archive = np.load(io.BytesIO(read_bytes(path)), allow_pickle=False)
        except (ValueError, OSError) as error:
            raise DataError(f"{path}: not a NumPy .npz archive ({error})") from None
        for key in (data.features_key, data.label_key):
            if key not in archive:
                raise DataError(f"{path}: no array {key!r} (has {sorted(archive.files)})")
        features = np.asarray(archive[data.features_key], dtype=np.float32)
        labels = np.asarray(archive[data.label_key], dtype=np.float32)
        if features.ndim != 2:
            raise DataError(
                f"{path}: {data.features_key!r} must be 2-D, has shape {features.shape}"
            )
        if len(labels) != len(features):
            raise DataError(f"{path}: {len(features)} feature rows but {len(labels)} labels")
        parts.append(Examples(features, labels, np.full(len(features), file_index, np.int32)))
    return concatenate(parts)


def synthetic_examples(params: ResolvedParameters) -> Examples:
    """A seeded, learnable problem: labels come from a fixed random 'teacher' of the inputs.

    Classification takes the argmax of a linear teacher, binary its sign, regression its value;
    noise is added to the inputs afterwards, so higher noise makes the task harder.
    """
    spec = params.spec
    synthetic = spec.data.synthetic
    units = spec.model.output_units or 1
    rng = np.random.default_rng(spec.training.seed)
    n, d = synthetic.examples, synthetic.features
    clean = rng.standard_normal((n, d)).astype(np.float32)
    teacher = rng.standard_normal((d, units)).astype(np.float32) / math.sqrt(d)
    scores = clean @ teacher
    task = spec.model.task
    if task == "classification":
        labels = np.argmax(scores, axis=1).astype(np.float32)
    elif task == "binary":
        labels = (scores[:, 0] > 0).astype(np.float32)
    else:
        labels = scores[:, 0] if units == 1 else scores
    features = clean + synthetic.noise * rng.standard_normal((n, d)).astype(np.float32)
    return Examples(features, labels.astype(np.float32), np.zeros(n, dtype=np.int32))


# ----------------------------------------------------------------------------- split & checks


def split_validation(examples: Examples, fraction: float, seed: int) -> tuple[Examples, Examples]:
    """Hold out int(n * fraction) examples after a seeded shuffle (same count as resolve())."""
    order = np.random.default_rng(seed).permutation(len(examples))
    held = int(len(examples) * fraction)
    return examples.take(np.sort(order[held:])), examples.take(np.sort(order[:held]))


# ---------------------------------------------------------------------------------- sharding


def effective_shard_policy(policy: str, num_files: int, num_workers: int) -> str:
    """`auto`: whole files per worker when there are at least as many files as workers."""
    if num_workers == 1:
        return "off"
    if policy == "auto":
        return "file" if num_files >= num_workers else "data"
    if policy == "file" and num_files < num_workers:
        raise DataError(
            f"data.shardPolicy file needs at least as many files as workers: "
            f"{num_files} file(s), {num_workers} workers"
        )
    return policy


def check_examples(examples: Examples, params: ResolvedParameters, what: str) -> None:
    """Width, values and labels of in-memory data, before anything trains on them."""
    spec = params.spec
    expected = spec.data.num_features
    width = examples.features.shape[1]
    if expected is not None and width != expected:
        raise DataError(f"{what}: {width} features, but data.numFeatures is {expected}")
    units = spec.model.output_units or 1
    task = spec.model.task
    labels = examples.labels
    if task == "regression":
        targets = 1 if labels.ndim == 1 else labels.shape[1]
        if targets != units:
            raise DataError(f"{what}: {targets} regression targets, model.outputUnits is {units}")
    elif labels.ndim != 1:
        raise DataError(f"{what}: labels must be one value per example for task {task}")
    bad = first_bad_row(examples.features, labels, task, units)
    if bad is not None:
        raise DataError(f"{what}: example {bad[0]}: {bad[1]}")


# ------------------------------------------------------------------------------------ splits


class Split(Protocol):
    """One side (training or validation) of the input, whatever its format."""

    @property
    def what(self) -> str: ...

    @property
    def num_files(self) -> int: ...

    @property
    def examples(self) -> int | None: ...

    def shard_examples(self, policy: str, workers: int) -> list[int] | None: ...

    def dataset(
        self,
        params: ResolvedParameters,
        *,
        policy: str,
        workers: int,
        index: int,
        batch_size: int,
        training: bool,
    ) -> Any: ...

    def explain(self, policy: str, workers: int, index: int) -> DataError | None: ...


@dataclass(frozen=True)
class InMemorySplit:
    what: str
    held: Examples
    num_files: int

    @property
    def examples(self) -> int:
        return len(self.held)

    def mine(self, policy: str, workers: int, index: int) -> Examples:
        if policy == "file":
            return self.held.take(np.flatnonzero(self.held.source % workers == index))
        if policy == "data":
            return self.held.take(np.arange(index, len(self.held), workers))
        return self.held

    def shard_examples(self, policy: str, workers: int) -> list[int]:
        return [len(self.mine(policy, workers, w)) for w in range(workers)]

    def dataset(
        self,
        params: ResolvedParameters,
        *,
        policy: str,
        workers: int,
        index: int,
        batch_size: int,
        training: bool,
    ) -> Any:
        import tensorflow as tf

        mine = self.mine(policy, workers, index)
        return batched(
            tf.data.Dataset.from_tensor_slices((mine.features, mine.labels)),
            params,
            training=training,
            batch_size=batch_size,
            shuffle_limit=len(mine),
            decode=lambda batch: batch,
        )

    def explain(self, policy: str, workers: int, index: int) -> DataError | None:
        return None  # checked whole before training


@dataclass(frozen=True)
class InputData:
    num_features: int
    statistics: Statistics | None  # from the training split; the model's first layer applies it
    train: Split
    validation: Split | None


def check_shards(split: Split, policy: str, workers: int) -> None:
    """Every worker must get examples: one without would starve the group's collectives."""
    counts = split.shard_examples(policy, workers)
    for index, count in enumerate(counts or ()):
        if count == 0:
            raise DataError(
                f"{split.what}: worker {index} gets no examples with shard policy {policy} "
                f"({split.examples} examples in {split.num_files} file(s), {workers} workers)"
            )


# ------------------------------------------------------------------------------------- input


def load_input(params: ResolvedParameters) -> InputData:
    """The job's input: in memory for npz and synthetic, streamed for csv and tfrecord."""
    if params.spec.data.format in ("csv", "tfrecord"):
        return streamed_input(params)
    return in_memory_input(params)


def in_memory_input(params: ResolvedParameters) -> InputData:
    data = params.spec.data
    validation: Examples | None = None
    if data.format == "synthetic":
        train = synthetic_examples(params)
        num_files = 1
    else:
        assert data.path is not None  # validation requires it for file formats
        files = expand_paths(data.path, "data.path")
        num_files = len(files)
        train = read_npz(files, data)
        if data.validation_path:
            validation = read_npz(expand_paths(data.validation_path, "data.validationPath"), data)
    if validation is None and data.validation_split > 0:
        train, validation = split_validation(
            train, data.validation_split, params.spec.training.seed
        )
        if len(validation) == 0:
            validation = None
    check_examples(train, params, "training data")
    if validation is not None:
        check_examples(validation, params, "validation data")
    return InputData(
        num_features=int(train.features.shape[1]),
        statistics=statistics_of(train.features, data.preprocess.normalization),
        train=InMemorySplit("training data", train, num_files),
        validation=None
        if validation is None
        else InMemorySplit("validation data", validation, num_files),
    )


def streamed_input(params: ResolvedParameters) -> InputData:
    """Files listed and probed, then one pass over them unless nothing needs it.

    The pass is skipped only when training.stepsPerEpoch is set and normalization is `none`:
    nothing is then counted (and bad data surfaces when training reaches it).
    """
    spec = params.spec
    data = spec.data
    assert data.path is not None  # validation requires it for file formats
    files, compressions = streamed_files(data.path, data, "data.path")
    layout = layout_of(files, compressions, data)
    checks = Checks(spec.model.task, spec.model.output_units or 1)
    if checks.task == "regression" and checks.units != 1:
        raise DataError(
            f"data.format {data.format} has one label per example, but model.outputUnits is "
            f"{checks.units} (several regression targets need npz)"
        )
    holdout = None
    if not data.validation_path and data.validation_split > 0:
        holdout = Holdout(data.validation_split, spec.training.seed)
    kind = data.preprocess.normalization
    needs_pass = kind != "none" or spec.training.steps_per_epoch is None or holdout is not None
    census = (
        scan(files, compressions, layout, checks, holdout, statistics=kind != "none")
        if needs_pass
        else None
    )

    def split(side: Any, counts: list[int] | None) -> StreamedSplit:
        return StreamedSplit(
            "training data" if side != "held" else "validation data",
            tuple(files),
            tuple(compressions),
            layout,
            checks,
            side,
            holdout,
            None if counts is None else tuple(counts),
        )

    train = split("train" if holdout else "all", None if census is None else census.train)
    if train.examples == 0:
        raise DataError(f"training data {data.path}: no examples")
    validation: StreamedSplit | None = None
    if holdout is not None and census is not None and sum(census.held) > 0:
        validation = split("held", census.held)
    elif data.validation_path:
        vfiles, vcompressions = streamed_files(data.validation_path, data, "data.validationPath")
        vlayout = layout_of(vfiles, vcompressions, data)
        if vlayout.columns != layout.columns:
            raise DataError(f"{vfiles[0]}: header differs from {files[0]}'s")
        vcensus = scan(vfiles, vcompressions, vlayout, checks, None, statistics=False)
        validation = StreamedSplit(
            "validation data",
            tuple(vfiles),
            tuple(vcompressions),
            vlayout,
            checks,
            "all",
            None,
            tuple(vcensus.train),
        )
    return InputData(
        num_features=layout.num_features,
        statistics=None if census is None else census.moments.statistics(kind),
        train=train,
        validation=validation,
    )


def steps_for(examples: int, batch_size: int) -> int:
    """Steps of one pass (the last batch wraps around: the dataset repeats)."""
    return max(1, math.ceil(examples / batch_size))
