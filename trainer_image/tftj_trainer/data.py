"""Training and validation data: readers for csv, tfrecord, npz and synthetic behind one
interface, the validation split, normalization, label checks, sharding and the tf.data pipeline.

Every worker reads the whole training set: the validation split (a seeded shuffle) and the
normalization statistics must be identical on all workers, or they would train different
models. Each worker then keeps its shard (by file or by example, per data.shardPolicy). Data is
held in memory as NumPy arrays, which suits the MLP-sized datasets this trainer targets.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tftj.api.models import Data
from tftj.api.resolve import ResolvedParameters

from tftj_trainer.exitcodes import DataError
from tftj_trainer.statistics import Statistics, statistics_of


@dataclass(frozen=True)
class Examples:
    features: np.ndarray  # float32 [n, num_features]
    labels: np.ndarray  # float32 [n] or [n, k] (regression with k targets)
    source: np.ndarray  # int32 [n]: index of the file each example came from

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def take(self, indices: np.ndarray) -> Examples:
        return Examples(self.features[indices], self.labels[indices], self.source[indices])


@dataclass(frozen=True)
class Splits:
    train: Examples
    validation: Examples | None
    num_files: int  # training files (1 for synthetic): decides whether file sharding is possible
    statistics: Statistics | None  # from the training split; the model's first layer applies it

    @property
    def num_features(self) -> int:
        return int(self.train.features.shape[1])


Reader = Callable[[Sequence[str], Data], Examples]


# ------------------------------------------------------------------------------------- paths


def expand_paths(pattern: str, what: str) -> list[str]:
    """A file, every file of a directory, or a glob's matches (sorted: same order everywhere)."""
    import tensorflow as tf

    gfile = tf.io.gfile
    if gfile.isdir(pattern):
        files = [
            f"{pattern.rstrip('/')}/{name}"
            for name in gfile.listdir(pattern)
            if not name.startswith(".") and not gfile.isdir(f"{pattern.rstrip('/')}/{name}")
        ]
    elif any(char in pattern for char in "*?["):
        files = [f for f in gfile.glob(pattern) if not gfile.isdir(f)]
    elif gfile.exists(pattern):
        files = [pattern]
    else:
        raise DataError(f"{what} {pattern}: no such file or directory")
    if not files:
        raise DataError(f"{what} {pattern}: matches no files")
    return sorted(files)


def read_bytes(path: str) -> bytes:
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as handle:
        return bytes(handle.read())


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


def read_csv(files: Sequence[str], data: Data) -> Examples:
    """Header row; `labelKey` is the label column, every other column a feature."""
    parts = []
    header0: list[str] | None = None
    for file_index, path in enumerate(files):
        rows = csv.reader(io.StringIO(read_bytes(path).decode("utf-8")))
        header = next(rows, None)
        if header is None:
            raise DataError(f"{path}: empty CSV file (expected a header row)")
        header = [h.strip() for h in header]
        if data.label_key not in header:
            raise DataError(f"{path}: no label column {data.label_key!r} in the header")
        if header0 is not None and header != header0:
            raise DataError(f"{path}: header differs from {files[0]}'s")
        header0 = header
        label_at = header.index(data.label_key)
        values = []
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path} line {line}: expected {len(header)} columns as in the header, "
                    f"got {len(row)}"
                )
            try:
                values.append([float(v) for v in row])
            except ValueError:
                bad = next(i for i, v in enumerate(row) if not _is_number(v))
                raise DataError(
                    f"{path} line {line}: column {header[bad]!r} is not a number: {row[bad]!r}"
                ) from None
        if not values:
            raise DataError(f"{path}: no data rows")
        table = np.asarray(values, dtype=np.float32)
        parts.append(
            Examples(
                np.delete(table, label_at, axis=1),
                table[:, label_at],
                np.full(len(table), file_index, dtype=np.int32),
            )
        )
    return concatenate(parts)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


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


def read_tfrecord(files: Sequence[str], data: Data) -> Examples:
    """tf.train.Example records: float list `featuresKey` of numFeatures, scalar `labelKey`."""
    import tensorflow as tf

    assert data.num_features is not None  # validation requires it for tfrecord
    parts = []
    for file_index, path in enumerate(files):
        message = ""
        for labels_as in (tf.float32, tf.int64):  # labels may be stored as floats or ints
            spec = {
                data.features_key: tf.io.FixedLenFeature([data.num_features], tf.float32),
                data.label_key: tf.io.FixedLenFeature([], labels_as),
            }
            try:
                batches = [
                    (b[data.features_key].numpy(), b[data.label_key].numpy())
                    for b in tf.data.TFRecordDataset(path)
                    .batch(4096)
                    .map(lambda r, spec=spec: tf.io.parse_example(r, spec))
                ]
                break
            except tf.errors.InvalidArgumentError as error:
                message = str(error.message)
        else:
            raise DataError(
                f"{path}: records do not match the expected features: {message.splitlines()[0]}"
            )
        nonempty = [b for b in batches if len(b[0])]
        if not nonempty:
            raise DataError(f"{path}: no records")
        features = np.concatenate([b[0] for b in nonempty]).astype(np.float32)
        labels = np.concatenate([b[1] for b in nonempty]).astype(np.float32)
        parts.append(Examples(features, labels, np.full(len(features), file_index, np.int32)))
    return concatenate(parts)


READERS: dict[str, Reader] = {"csv": read_csv, "npz": read_npz, "tfrecord": read_tfrecord}


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


def check_examples(examples: Examples, params: ResolvedParameters, what: str) -> None:
    """Shape and label checks that would otherwise surface as NaNs or an opaque TF error."""
    spec = params.spec
    expected = spec.data.num_features
    width = examples.features.shape[1]
    if expected is not None and width != expected:
        raise DataError(f"{what}: {width} features, but data.numFeatures is {expected}")
    if not np.all(np.isfinite(examples.features)):
        row = int(np.argwhere(~np.isfinite(examples.features))[0][0])
        raise DataError(f"{what}: example {row} has a non-finite feature value")
    labels = examples.labels
    units = spec.model.output_units or 1
    task = spec.model.task
    if task == "regression":
        targets = 1 if labels.ndim == 1 else labels.shape[1]
        if targets != units:
            raise DataError(f"{what}: {targets} regression targets, model.outputUnits is {units}")
        if not np.all(np.isfinite(labels)):
            raise DataError(f"{what}: non-finite regression label")
        return
    if labels.ndim != 1:
        raise DataError(f"{what}: labels must be one value per example for task {task}")
    allowed = units if task == "classification" else 2
    bad = (labels != np.round(labels)) | (labels < 0) | (labels >= allowed)
    if np.any(bad):
        row = int(np.argmax(bad))
        raise DataError(
            f"{what}: label {labels[row]:g} of example {row} is out of range: task {task} "
            f"expects integers in [0, {allowed - 1}]"
        )


def load_splits(params: ResolvedParameters) -> Splits:
    """Read, split, check and compute the normalization statistics: identical on every worker."""
    data = params.spec.data
    seed = params.spec.training.seed
    validation: Examples | None = None
    if data.format == "synthetic":
        train = synthetic_examples(params)
        num_files = 1
    else:
        assert data.path is not None  # validation requires it for file formats
        files = expand_paths(data.path, "data.path")
        num_files = len(files)
        train = READERS[data.format](files, data)
        if data.validation_path:
            validation = READERS[data.format](
                expand_paths(data.validation_path, "data.validationPath"), data
            )
    if validation is None and data.validation_split > 0:
        train, validation = split_validation(train, data.validation_split, seed)
        if len(validation) == 0:
            validation = None
    check_examples(train, params, "training data")
    if validation is not None:
        check_examples(validation, params, "validation data")
    return Splits(
        train=train,
        validation=validation,
        num_files=num_files,
        statistics=statistics_of(train.features, data.preprocess.normalization),
    )


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


def shard(examples: Examples, policy: str, num_workers: int, index: int, what: str) -> Examples:
    """This worker's share: its files (`file`), every num_workers-th example (`data`), or all."""
    if policy == "file":
        mine = examples.source % num_workers == index
    elif policy == "data":
        mine = np.arange(len(examples)) % num_workers == index
    else:
        return examples
    part = examples.take(np.flatnonzero(mine))
    if len(part) == 0:
        raise DataError(
            f"{what}: worker {index} gets no examples with shard policy {policy} "
            f"({len(examples)} examples, {num_workers} workers)"
        )
    return part


# ---------------------------------------------------------------------------------- pipeline


def steps_for(examples: int, batch_size: int) -> int:
    """Steps of one pass (the last batch wraps around: the dataset repeats)."""
    return max(1, math.ceil(examples / batch_size))


def make_dataset(
    examples: Examples,
    params: ResolvedParameters,
    *,
    training: bool,
    batch_size: int,
) -> object:
    """A repeating tf.data pipeline of `batch_size` batches; callers bound it with steps.

    Repeating with a fixed step count keeps every worker at the same number of steps per epoch
    whatever the size of its shard, which collective ops require.
    """
    import tensorflow as tf

    spec = params.spec
    data = spec.data
    labels = examples.labels
    dataset = tf.data.Dataset.from_tensor_slices((examples.features, labels))
    if spec.training.loss == "categorical-crossentropy":
        units = spec.model.output_units
        dataset = dataset.map(
            lambda x, y: (x, tf.one_hot(tf.cast(y, tf.int32), units)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if data.cache:
        dataset = dataset.cache()
    if training and data.shuffle:
        dataset = dataset.shuffle(
            min(data.shuffle_buffer, len(examples)),
            seed=spec.training.seed,
            reshuffle_each_iteration=True,
        )
    dataset = dataset.repeat().batch(batch_size, drop_remainder=True)
    options = tf.data.Options()
    # Sharding is done above from the job's own policy; tf.data must not shard again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
