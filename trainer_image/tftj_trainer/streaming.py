"""Streamed formats (TFRecord, CSV): files are read record by record, never held whole.

A worker's pipeline: its files (whole files per worker, or every file and every W-th record,
per data.shardPolicy) -> parallel interleave of per-file readers -> validation hold-out filter
-> shuffle buffer -> repeat -> batch -> parse the batch (one parse_example / decode_csv op)
-> checks -> prefetch. Memory is bounded by the shuffle buffer and the read buffers, not by
the dataset.

Before training, one pass over the training files (`scan`) counts the examples per file (the
steps per epoch and every worker's shard size follow), computes the normalization statistics
and checks every record; the first bad one stops the job naming its file and record. When
training later meets bad data anyway (files changed, or the pass was skipped), `explain`
re-reads this worker's files to name the record instead of showing TensorFlow's stack.

The validation hold-out is decided per record by a keyed hash of its bytes (SipHash with
training.seed), so the train and validation pipelines agree on it without any shared state,
on every worker, at every epoch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from tftj.api.models import Data
from tftj.api.resolve import ResolvedParameters

from tftj_trainer.datachecks import bad_rows, first_bad_row
from tftj_trainer.datafiles import compression_of, expand_paths, tf_message
from tftj_trainer.exitcodes import DataError
from tftj_trainer.pipeline import batched
from tftj_trainer.statistics import Moments

SCAN_VALUES = 1 << 20  # feature values parsed per op in the scan (bounds its memory)
READ_BUFFER = 1 << 18  # bytes buffered per open file
MAX_OPEN_FILES = 4  # files read in parallel by one worker's interleave
HOLDOUT_BUCKETS = 1 << 20
HOLDOUT_KEY = 0x7466746A  # second half of the SipHash key ("tftj"); the first is training.seed

Side = Literal["all", "train", "held"]


# ------------------------------------------------------------------------------------ layout


@dataclass(frozen=True)
class Layout:
    """How the records of one streamed dataset become (features, label) batches."""

    format: str  # csv | tfrecord
    num_features: int
    features_key: str
    label_key: str
    label_int: bool  # tfrecord: labels stored as int64 (else float)
    columns: tuple[str, ...]  # csv header
    label_column: int  # csv

    def open(self, path: Any, compression: Any) -> Any:
        """One file's raw records (CSV: its lines after the header)."""
        import tensorflow as tf

        if self.format == "tfrecord":
            return tf.data.TFRecordDataset(
                path, compression_type=compression, buffer_size=READ_BUFFER
            )
        lines = tf.data.TextLineDataset(path, compression_type=compression, buffer_size=READ_BUFFER)
        return lines.skip(1)

    def parse(self, records: Any) -> tuple[Any, Any]:
        """A batch of raw records -> float32 features [n, num_features], float32 labels [n]."""
        import tensorflow as tf

        if self.format == "tfrecord":
            spec = {
                self.features_key: tf.io.FixedLenFeature([self.num_features], tf.float32),
                self.label_key: tf.io.FixedLenFeature(
                    [], tf.int64 if self.label_int else tf.float32
                ),
            }
            parsed = tf.io.parse_example(records, spec)
            return parsed[self.features_key], tf.cast(parsed[self.label_key], tf.float32)
        required = [tf.constant([], tf.float32)] * len(self.columns)
        cells = tf.io.decode_csv(tf.strings.strip(records), required)
        features = tf.stack([c for i, c in enumerate(cells) if i != self.label_column], axis=1)
        return features, cells[self.label_column]

    def where(self, index: int) -> str:
        """Record `index` (0-based, counting every record of the file) in the user's terms."""
        if self.format == "csv":
            return f"line {index + 2}"  # the header is line 1
        return f"record {index + 1}"

    def explain_parse_error(self, message: str) -> str:
        if self.format == "csv":
            fields = re.search(r"Expect (\d+) fields but have (\d+)", message)
            if fields:
                return f"expected {fields[1]} columns as in the header, got {fields[2]}"
            cell = re.search(r"Field (\d+) in record \d+ is not a valid float: (.*)$", message)
            if cell:
                return f"column {self.columns[int(cell[1])]!r} is not a number: {cell[2]!r}"
            missing = re.search(r"Field (\d+) is required but missing", message)
            if missing:
                return f"column {self.columns[int(missing[1])]!r} is empty"
            return message
        return re.sub(r"^Name: [^,]*, ", "", re.sub(r"Index: \d+\.\s*", "", message))


def csv_header(path: str, compression: str) -> tuple[str, ...]:
    import tensorflow as tf

    lines = tf.data.TextLineDataset(path, compression_type=compression).take(1)
    try:
        first = [bytes(line.numpy()).decode("utf-8") for line in lines]
    except (tf.errors.OpError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the CSV header: {tf_message(error)}") from None
    if not first or not first[0].strip():
        raise DataError(f"{path}: empty CSV file (expected a header row)")
    return tuple(name.strip() for name in first[0].split(","))


def first_record(files: Sequence[str], compressions: Sequence[str]) -> tuple[str, bytes]:
    import tensorflow as tf

    for path, compression in zip(files, compressions, strict=True):
        try:
            for record in tf.data.TFRecordDataset(path, compression_type=compression).take(1):
                return path, bytes(record.numpy())
        except tf.errors.OpError as error:
            raise DataError(f"{path}: cannot read: {tf_message(error)}") from None
    raise DataError(f"{files[0]}: no records in any of the {len(files)} file(s)")


def layout_of(files: Sequence[str], compressions: Sequence[str], data: Data) -> Layout:
    """Read the CSV header or the first tf.train.Example: names, widths and label type."""
    if data.format == "csv":
        columns = csv_header(files[0], compressions[0])
        if data.label_key not in columns:
            raise DataError(f"{files[0]}: no label column {data.label_key!r} in the header")
        for path, compression in zip(files[1:], compressions[1:], strict=True):
            if csv_header(path, compression) != columns:
                raise DataError(f"{path}: header differs from {files[0]}'s")
        width = len(columns) - 1
        if data.num_features is not None and width != data.num_features:
            raise DataError(
                f"{files[0]}: {width} feature columns, but data.numFeatures is {data.num_features}"
            )
        return Layout(
            "csv", width, "", data.label_key, False, columns, columns.index(data.label_key)
        )
    import tensorflow as tf

    assert data.num_features is not None  # validation requires it for tfrecord
    path, record = first_record(files, compressions)
    try:
        example = tf.train.Example.FromString(record)
    except Exception:  # protobuf's DecodeError: not a tf.train.Example
        raise DataError(f"{path} record 1: not a tf.train.Example") from None
    features = example.features.feature
    for key in (data.features_key, data.label_key):
        if key not in features:
            raise DataError(f"{path} record 1: no feature {key!r} (has {sorted(features)})")
    label_int = features[data.label_key].WhichOneof("kind") == "int64_list"
    return Layout(
        "tfrecord", data.num_features, data.features_key, data.label_key, label_int, (), 0
    )


# ---------------------------------------------------------------------------------- hold-out


@dataclass(frozen=True)
class Holdout:
    """Which records form the validation split: a keyed hash of the record's bytes."""

    fraction: float
    seed: int

    def held(self, records: Any) -> Any:
        import tensorflow as tf

        buckets = tf.strings.to_hash_bucket_strong(
            records, HOLDOUT_BUCKETS, key=[self.seed, HOLDOUT_KEY]
        )
        return buckets < round(self.fraction * HOLDOUT_BUCKETS)


def kept(side: Side, holdout: Holdout | None, records: Any) -> Any:
    """bool: the records this side keeps (None = all)."""
    if holdout is None or side == "all":
        return None
    held = holdout.held(records)
    return held if side == "held" else ~held


# -------------------------------------------------------------------------------------- scan


@dataclass
class Census:
    """What a pass over files found: examples per file on each side, training statistics."""

    train: list[int]
    held: list[int]
    moments: Moments


@dataclass(frozen=True)
class Checks:
    task: str
    units: int


def scan(
    files: Sequence[str],
    compressions: Sequence[str],
    layout: Layout,
    checks: Checks,
    holdout: Holdout | None,
    *,
    statistics: bool,
) -> Census:
    """One pass over `files`: counts, statistics of the non-held-out rows, and every check.

    Raises DataError naming the file and record of the first problem. Files are read in
    order and in fixed-size batches, so every worker computes identical statistics.
    """
    census = Census([], [], Moments())
    for path, compression in zip(files, compressions, strict=True):
        train, held = scan_file(
            path, compression, layout, checks, holdout, census.moments if statistics else None
        )
        census.train.append(train)
        census.held.append(held)
    return census


def scan_file(
    path: str,
    compression: str,
    layout: Layout,
    checks: Checks,
    holdout: Holdout | None,
    moments: Moments | None,
) -> tuple[int, int]:
    import tensorflow as tf

    size = max(16, SCAN_VALUES // layout.num_features)  # wide records: fewer per batch
    batches = iter(layout.open(path, compression).batch(size).prefetch(1))
    start = train = held = 0
    while True:
        try:
            records = next(batches)
        except StopIteration:
            return train, held
        except tf.errors.OpError as error:
            raise read_error(path, compression, layout, start, error) from None
        rows = np.arange(start, start + int(records.shape[0]))
        if layout.format == "csv":  # blank lines are not examples
            nonblank = np.asarray(tf.strings.length(tf.strings.strip(records)) > 0)
            records, rows = tf.boolean_mask(records, nonblank), rows[nonblank]
        try:
            features, labels = layout.parse(records)
        except tf.errors.InvalidArgumentError:
            raise parse_error(path, layout, records, rows) from None
        bad = first_bad_row(features, labels, checks.task, checks.units)
        if bad is not None:
            raise DataError(f"{path} {layout.where(int(rows[bad[0]]))}: {bad[1]}")
        is_held = (
            np.zeros(len(rows), bool) if holdout is None else np.asarray(holdout.held(records))
        )
        held += int(is_held.sum())
        train += int(len(rows) - is_held.sum())
        if moments is not None:
            moments.add(np.asarray(features)[~is_held])
        start += size


def parse_error(path: str, layout: Layout, records: Any, rows: np.ndarray) -> DataError:
    """The first record of a batch that does not parse, parsed alone for its own message."""
    import tensorflow as tf

    for position, row in enumerate(rows):
        try:
            layout.parse(records[position : position + 1])
        except tf.errors.InvalidArgumentError as error:
            problem = layout.explain_parse_error(tf_message(error))
            return DataError(f"{path} {layout.where(int(row))}: {problem}")
    return DataError(f"{path}: records from {layout.where(int(rows[0]))} do not parse")


def read_error(
    path: str, compression: str, layout: Layout, start: int, error: Exception
) -> DataError:
    """A file that cannot be opened, or a corrupt record: count records up to the failure."""
    import tensorflow as tf

    if not isinstance(error, tf.errors.DataLossError):
        return DataError(f"{path}: cannot read: {tf_message(error)}")
    index = start
    try:
        for _ in layout.open(path, compression).skip(start):
            index += 1
    except tf.errors.OpError:
        pass
    kind = {"GZIP": "gzip ", "ZLIB": "zlib "}.get(compression, "")
    hint = "" if kind else "; if the file is compressed, set data.compression"
    return DataError(
        f"{path} {layout.where(index)}: corrupt or truncated {kind}data ({tf_message(error)}){hint}"
    )


# ------------------------------------------------------------------------------------- split


@dataclass(frozen=True)
class StreamedSplit:
    """One side (training or validation) of a streamed dataset."""

    what: str  # "training data" / "validation data"
    files: tuple[str, ...]
    compressions: tuple[str, ...]
    layout: Layout
    checks: Checks
    side: Side
    holdout: Holdout | None
    counts: tuple[int, ...] | None  # examples per file on this side; None = not counted

    @property
    def num_files(self) -> int:
        return len(self.files)

    @property
    def examples(self) -> int | None:
        return None if self.counts is None else sum(self.counts)

    def mine(self, policy: str, workers: int, index: int) -> tuple[int, ...]:
        """Indices of the files worker `index` opens."""
        everything = tuple(range(len(self.files)))
        return everything[index::workers] if policy == "file" else everything

    def shard_examples(self, policy: str, workers: int) -> list[int] | None:
        if self.counts is None:
            return None
        total = sum(self.counts)
        if policy == "file":
            return [
                sum(self.counts[i] for i in self.mine(policy, workers, w)) for w in range(workers)
            ]
        if policy == "data":
            return [len(range(w, total, workers)) for w in range(workers)]
        return [total] * workers

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
        layout, holdout, side, checks = self.layout, self.holdout, self.side, self.checks
        files = tf.data.Dataset.from_tensor_slices(
            ([self.files[i] for i in mine], [self.compressions[i] for i in mine])
        )
        if training and params.spec.data.shuffle and len(mine) > 1:
            files = files.shuffle(
                len(mine), seed=params.spec.training.seed, reshuffle_each_iteration=True
            )
        records = files.interleave(
            layout.open,
            cycle_length=min(len(mine), MAX_OPEN_FILES),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        if layout.format == "csv":
            records = records.filter(lambda r: tf.strings.length(tf.strings.strip(r)) > 0)
        if holdout is not None and side != "all":
            records = records.filter(lambda r: kept(side, holdout, r))
        if policy == "data":
            records = records.shard(workers, index)

        def decode(batch: Any) -> tuple[Any, Any]:
            features, labels = layout.parse(batch)
            ok = tf.logical_not(
                tf.reduce_any(bad_rows(features, labels, checks.task, checks.units))
            )
            check = tf.debugging.Assert(
                ok, ["bad example (non-finite value or label out of range)"]
            )
            with tf.control_dependencies([check]):
                return tf.identity(features), tf.identity(labels)

        shard = self.shard_examples(policy, workers)
        return batched(
            records,
            params,
            training=training,
            batch_size=batch_size,
            shuffle_limit=None if shard is None else shard[index],
            decode=decode,
        )

    def explain(self, policy: str, workers: int, index: int) -> DataError | None:
        """Re-read this worker's files: the DataError naming the first bad record, if any."""
        mine = self.mine(policy, workers, index)
        try:
            scan(
                [self.files[i] for i in mine],
                [self.compressions[i] for i in mine],
                self.layout,
                self.checks,
                None,
                statistics=False,
            )
        except DataError as error:
            return error
        return None


def streamed_files(pattern: str, data: Data, what: str) -> tuple[list[str], list[str]]:
    files = expand_paths(pattern, what)
    return files, [compression_of(f, data.compression) for f in files]
