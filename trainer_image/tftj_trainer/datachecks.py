"""What makes an example unusable, decided the same way for streamed and in-memory data.

`bad_rows` is TensorFlow (it runs inside the input pipeline and over scanned batches);
`row_problem` words the verdict for the one row a user is then shown.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def allowed_labels(task: str, units: int) -> int:
    """Classification labels are integers in [0, allowed)."""
    return units if task == "classification" else 2


def bad_rows(features: Any, labels: Any, task: str, units: int) -> Any:
    """bool [n]: rows with a non-finite feature, or a label the task cannot learn from."""
    import tensorflow as tf

    bad = tf.logical_not(tf.reduce_all(tf.math.is_finite(features), axis=1))
    if task == "regression":
        targets = tf.reshape(labels, [tf.shape(labels)[0], -1])
        return bad | tf.logical_not(tf.reduce_all(tf.math.is_finite(targets), axis=1))
    allowed = float(allowed_labels(task, units))
    return (
        bad
        | (labels != tf.round(labels))
        | (labels < 0)
        | (labels >= allowed)
        | tf.math.is_nan(labels)
    )


def row_problem(
    features: npt.NDArray[np.floating],
    label: npt.NDArray[np.floating] | float,
    task: str,
    units: int,
) -> str:
    """Why one row is bad, in the user's terms."""
    finite = np.isfinite(features)
    if not np.all(finite):
        column = int(np.flatnonzero(~finite)[0])
        return f"feature {column} is {features[column]} (non-finite)"
    if task == "regression":
        return "non-finite regression label"
    return (
        f"label {float(np.asarray(label)):g} is out of range: task {task} expects integers in "
        f"[0, {allowed_labels(task, units) - 1}]"
    )


def first_bad_row(features: Any, labels: Any, task: str, units: int) -> tuple[int, str] | None:
    """(row, problem) of the first bad row of a batch, or None."""
    bad = np.asarray(bad_rows(features, labels, task, units))
    if not bad.any():
        return None
    row = int(np.argmax(bad))
    return row, row_problem(np.asarray(features[row]), np.asarray(labels[row]), task, units)
