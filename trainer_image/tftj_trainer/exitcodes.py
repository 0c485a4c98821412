"""Errors the trainer reports, each carrying the contract exit code the operator acts on."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from tftj.api.contract import ExitCode


class TrainerError(Exception):
    """A failure with a one-line, user-facing message and the exit code it maps to."""

    code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str, code: ExitCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return one_line(str(self))


class ParametersError(TrainerError):
    code = ExitCode.BAD_PARAMETERS


class DataError(TrainerError):
    code = ExitCode.BAD_DATA


class ModelError(TrainerError):
    code = ExitCode.BAD_MODEL


class PreemptedError(TrainerError):
    code = ExitCode.PREEMPTED


class StorageFullError(TrainerError):
    code = ExitCode.STORAGE_FULL


# What a full file system says, from Python (OSError.errno) or from TensorFlow's file system,
# which reports ENOSPC as RESOURCE_EXHAUSTED with the OS's text after the path it wrote.
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXTS = tuple(os.strerror(e) for e in _FULL_ERRNOS)


def storage_full(error: BaseException, root: Path) -> StorageFullError | None:
    """`error` (or what caused it) as a full disk or quota, naming the file being written and,
    when it lies under the job's storage `root`, what to change; None for anything else."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL_ERRNOS:
            return _full(seen.filename, os.strerror(seen.errno), root)
        text = str(seen)
        reason = next((t for t in _FULL_TEXTS if t in text), None)
        if reason is not None:
            # TensorFlow: "... /storage/checkpoints/ckpt-1_temp/part-0...; No space left on device"
            match = re.search(r"(/[^\s;:]+)[;:]? *" + re.escape(reason), text)
            return _full(match.group(1) if match else None, reason, root)
        seen = seen.__cause__ or seen.__context__
    return None


def _full(path: str | os.PathLike[str] | None, reason: str, root: Path) -> StorageFullError:
    where = f" writing {path}" if path else ""
    message = f"storage full: {reason.lower()}{where}"
    if path is None or Path(path).is_relative_to(root):
        message += (
            f" (the job's storage at {root}: free space there or make spec.storage.size larger;"
            " a retry would fail at the same write)"
        )
    return StorageFullError(message)


def one_line(text: str, limit: int = 500) -> str:
    """Messages go to a termination log and a terminal status line: never multi-line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def tensorflow_error_code(error: BaseException) -> ExitCode | None:
    """The exit code of a TensorFlow runtime error raised when a peer worker went away.

    Under MultiWorkerMirroredStrategy a vanished peer surfaces in the survivors as one of these
    from a collective op; the whole group is restarted from the checkpoint, so it is retryable.
    """
    import tensorflow as tf  # only reached after TensorFlow is loaded

    peer_errors = (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
    )
    if isinstance(error, peer_errors):
        return ExitCode.PEER_LOST
    if isinstance(error, tf.errors.InternalError) and "ollective" in str(error):
        return ExitCode.PEER_LOST
    return None
