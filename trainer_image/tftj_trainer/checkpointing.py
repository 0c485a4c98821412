"""Checkpoints under the job's storage and resume after a group restart.

Every worker must take part in a save (variables of a distributed model are read with
collectives), but only the chief's files are real: the others write into a temporary directory
they delete. On start every worker restores the chief's latest checkpoint, so a restarted group
continues at the epoch after it instead of epoch 0.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import tensorflow as tf

CHECKPOINT_PREFIX = "ckpt"
log = logging.getLogger("tftj_trainer")


class Checkpoints:
    def __init__(
        self, model: Any, directory: Path, *, is_chief: bool, worker: int, max_to_keep: int
    ) -> None:
        self.directory = directory
        self.is_chief = is_chief
        # The epoch counter travels inside the checkpoint, so resume needs no side file.
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=model.optimizer, epoch=self.epoch
        )
        self._scratch = None if is_chief else Path(tempfile.mkdtemp(prefix=f"tftj-ckpt-w{worker}-"))
        write_dir = directory if is_chief else self._scratch
        assert write_dir is not None
        if is_chief:
            write_dir.mkdir(parents=True, exist_ok=True)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            str(write_dir),
            max_to_keep=max_to_keep,
            checkpoint_name=CHECKPOINT_PREFIX,
        )

    def restore(self) -> int:
        """Restore the chief's newest complete checkpoint; returns its epoch (0: none).

        A checkpoint is written as data + index files, then named in the `checkpoint` state
        file (an atomic rename), so a crash in the middle of a save leaves the previous one
        named. A named checkpoint can still be damaged (a truncated file, a storage fault):
        each is read whole first, and a damaged one is skipped for the one before it.

        The restore is deferred for the optimizer's slot variables, which tf_keras creates at the
        first step: they receive their saved values then.
        """
        state = tf.train.get_checkpoint_state(str(self.directory))
        if state is None:
            return 0
        named = [*reversed(list(state.all_model_checkpoint_paths)), state.model_checkpoint_path]
        candidates = list(dict.fromkeys(named))  # newest first, each once
        for path in candidates:
            problem = damage(path)
            if problem is None:
                self.checkpoint.restore(path).expect_partial()
                return int(self.epoch.numpy())
            log.warning("checkpoint %s is damaged (%s): trying the one before it", path, problem)
        log.warning("no complete checkpoint in %s: training from the start", self.directory)
        return 0

    def save(self, epoch: int) -> None:
        self.epoch.assign(epoch)
        self.manager.save(checkpoint_number=epoch)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def damage(path: str) -> str | None:
    """Why the checkpoint at `path` cannot be restored, or None when every tensor reads back
    (the reader checks each tensor's CRC32C and size against the index)."""
    try:
        reader = tf.train.load_checkpoint(path)
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)
    except (tf.errors.OpError, ValueError, IndexError) as error:  # IndexError: short read
        return " ".join(str(getattr(error, "message", error)).split())[:200]
    return None
