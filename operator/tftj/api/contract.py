"""The contract between the operator and the trainer: exit codes, metric names, environment.

Both sides import these constants, so the operator's decisions (retry or fail) and its reading
of progress from the chief's /metrics cannot drift from what the trainer does.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal

PARAMS_DIR = "/etc/tftj"
PARAMS_FILE = "params.yaml"


class ExitCode(IntEnum):
    """Trainer exit codes. Permanent ones are never retried; everything else non-zero is."""

    SUCCESS = 0
    UNEXPECTED = 1  # an unexpected error inside the trainer: retried (bounded by backoffLimit)
    USAGE = 2  # bad command line (argparse's convention)
    BAD_PARAMETERS = 3  # params file missing, unreadable or failing validation
    BAD_DATA = 4  # data missing, malformed, wrong shape, label out of range
    BAD_MODEL = 5  # model.builder not importable or returned something unusable
    PEER_LOST = 10  # a peer worker failed or vanished (collective op failed)
    PREEMPTED = 11  # SIGTERM / preemption notice: stopped cleanly after a checkpoint


PERMANENT_EXIT_CODES = frozenset(
    {ExitCode.USAGE, ExitCode.BAD_PARAMETERS, ExitCode.BAD_DATA, ExitCode.BAD_MODEL}
)

FailureKind = Literal["Permanent", "Retryable"]


def failure_kind(exit_code: int) -> FailureKind:
    """How the operator treats a worker that exited with `exit_code` (non-zero).

    Exit codes >= 128 are signals (137 = SIGKILL, e.g. OOM kill or eviction; 143 = SIGTERM):
    the worker did nothing wrong, so they are retryable like every code not listed permanent.
    """
    return "Permanent" if exit_code in PERMANENT_EXIT_CODES else "Retryable"


# Environment the operator sets on every worker (an Indexed Job adds JOB_COMPLETION_INDEX).
ENV_WORKER_HOSTS = "TFTJ_WORKER_HOSTS"  # comma-separated host:port of all workers, index order
ENV_WORKER_INDEX = "JOB_COMPLETION_INDEX"
ENV_ATTEMPT = "TFTJ_ATTEMPT"  # 0-based attempt number of the worker group
ENV_STORAGE_ROOT = "TFTJ_STORAGE_ROOT"  # the job's storage root inside the pod
ENV_JOB_NAME = "TFTJ_JOB_NAME"

# Prometheus metrics every worker serves on spec.metrics.port (labels: job, worker).
METRIC_PREFIX = "tftj_trainer_"
METRIC_EPOCH = "tftj_trainer_epoch"  # gauge: epochs completed
METRIC_EPOCHS_TARGET = "tftj_trainer_epochs_target"  # gauge: epochs to train
METRIC_STEP = "tftj_trainer_step"  # gauge: global optimizer steps completed
METRIC_STEPS_TARGET = "tftj_trainer_steps_target"  # gauge: steps to train (all epochs)
METRIC_LOSS = "tftj_trainer_loss"  # gauge, label split=train|validation
METRIC_VALUE = "tftj_trainer_metric"  # gauge, labels name=<metric>, split=train|validation
METRIC_LEARNING_RATE = "tftj_trainer_learning_rate"  # gauge
METRIC_EXAMPLES_PER_SECOND = "tftj_trainer_examples_per_second"  # gauge, global throughput
METRIC_ETA_SECONDS = "tftj_trainer_eta_seconds"  # gauge: estimated seconds to completion
METRIC_STEP_DURATION = "tftj_trainer_step_duration_seconds"  # histogram
METRIC_CHECKPOINTS = "tftj_trainer_checkpoints_saved_total"  # counter
METRIC_ATTEMPT = "tftj_trainer_attempt"  # gauge: attempt number this process runs in
METRIC_RESUMED_EPOCH = "tftj_trainer_resumed_from_epoch"  # gauge: epoch restored at start
METRIC_INFO = "tftj_trainer_info"  # gauge = 1; labels parameters_hash and strategy
