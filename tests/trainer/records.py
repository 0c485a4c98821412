"""Generate TFRecord datasets fast: one serialized tf.train.Example template, patched per row.

Serializing millions of floats through protobuf's Python API would take minutes; patching the
packed float block and the label byte of a template takes NumPy time. The bytes are exactly
what protobuf itself writes (the template comes from it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def template(num_features: int) -> tuple[np.ndarray, int, int]:
    """(serialized example, offset of its packed features, offset of its one-byte label)."""
    import tensorflow as tf

    def serialized(value: float, label: int) -> bytes:
        feature = {
            "features": tf.train.Feature(
                float_list=tf.train.FloatList(value=[value] * num_features)
            ),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        }
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        return bytes(example.SerializeToString())

    base = np.frombuffer(serialized(0.0, 0), np.uint8)
    floats = np.flatnonzero(base != np.frombuffer(serialized(1.0, 0), np.uint8))
    label = np.flatnonzero(base != np.frombuffer(serialized(0.0, 1), np.uint8))
    assert len(label) == 1
    # 1.0f is 00 00 80 3f: the first differing byte of the block is byte 2 of value 0.
    return base.copy(), int(floats[0]) - 2, int(label[0])


def write_examples(
    path: Path, features: np.ndarray, labels: np.ndarray, compression: str = ""
) -> Path:
    """`features` float32 [n, d], `labels` ints in [0, 128) as tf.train.Example records."""
    import tensorflow as tf

    n, d = features.shape
    base, at, label_at = template(d)
    rows = np.tile(base, (n, 1))
    rows[:, at : at + 4 * d] = np.ascontiguousarray(features, "<f4").view(np.uint8).reshape(n, -1)
    rows[:, label_at] = labels.astype(np.uint8)
    with tf.io.TFRecordWriter(str(path), options=compression or None) as writer:
        for row in rows:
            writer.write(row.tobytes())
    return path


def teacher_dataset(n: int, d: int, seed: int, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A learnable problem: labels are the argmax of a fixed linear teacher of the features."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n, d), dtype=np.float32)
    teacher = np.random.default_rng(0).standard_normal((d, classes)).astype(np.float32)
    return features, np.argmax(features @ teacher, axis=1)
