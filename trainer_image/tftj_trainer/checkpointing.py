"""Checkpoints under the job's storage and resume after a group restart.

Every worker must take part in a save (variables of a distributed model are read with
collectives), but only the chief's files are real: the others write into a temporary directory
they delete. On start every worker restores the chief's latest checkpoint, so a restarted group
continues at the epoch after it instead of epoch 0.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import tensorflow as tf

CHECKPOINT_PREFIX = "ckpt"


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
        """Restore the chief's latest checkpoint; returns its epoch (0 when there is none).

        The restore is deferred for the optimizer's slot variables, which tf_keras creates at the
        first step: they receive their saved values then.
        """
        latest = tf.train.latest_checkpoint(str(self.directory))
        if latest is None:
            return 0
        self.checkpoint.restore(latest).expect_partial()
        return int(self.epoch.numpy())

    def save(self, epoch: int) -> None:
        self.epoch.assign(epoch)
        self.manager.save(checkpoint_number=epoch)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
