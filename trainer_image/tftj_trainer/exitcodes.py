"""Errors the trainer reports, each carrying the contract exit code the operator acts on."""

from __future__ import annotations

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
