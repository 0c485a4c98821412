"""The exported SavedModel: raw features in, predictions out, and never seen half-written.

The model's first layer already normalizes (tftj_trainer.model.normalized_input), so the
serving signature only fixes the input's name, dtype and shape and names the outputs per task.
The chief writes the model next to its final place and renames it there: a crash during export
leaves the previous export (or none), not a directory a server would fail to load.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tensorflow as tf

SIGNATURE = "serving_default"
INPUT_NAME = "features"


def serving_function(model: Any, input_dim: int, task: str) -> Callable[..., dict[str, Any]]:
    """`serving_default`: float32 `features` [batch, input_dim] -> outputs named per task."""

    signature = [tf.TensorSpec([None, input_dim], tf.float32, name=INPUT_NAME)]

    @tf.function(input_signature=signature)  # type: ignore[untyped-decorator]
    def serve(features: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = tf.cast(model(features, training=False), tf.float32)
        if task == "classification":
            return {"probabilities": outputs, "class_ids": tf.argmax(outputs, axis=1)}
        if task == "binary":
            return {
                "probabilities": outputs,
                "class_ids": tf.cast(outputs[:, 0] > 0.5, tf.int64),
            }
        return {"predictions": outputs}

    return serve  # type: ignore[no-any-return]


def save(model: Any, path: Path, input_dim: int, task: str) -> None:
    model.save(
        str(path),
        include_optimizer=False,
        save_format="tf",
        signatures={SIGNATURE: serving_function(model, input_dim, task)},
    )


def export_model(
    model: Any, directory: Path, *, input_dim: int, task: str, is_chief: bool, worker: int
) -> None:
    """Every worker saves (reading distributed variables takes collectives); only the chief's
    copy is kept, moved into `directory` by renames on the same filesystem."""
    if not is_chief:
        scratch = Path(tempfile.mkdtemp(prefix=f"tftj-export-w{worker}-"))
        try:
            save(model, scratch / "model", input_dim, task)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    for stale in directory.parent.glob(f".{directory.name}.partial-*"):  # an earlier crash's
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.partial-", dir=directory.parent))
    try:
        save(model, staging / "model", input_dim, task)
        replace_directory(staging / "model", directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_directory(new: Path, target: Path) -> None:
    """Put `new` at `target`. A directory cannot be renamed over a non-empty one, so an old
    export is first renamed aside: at every instant `target` is absent or complete."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
