"""The contract between the operator and the trainer: exit codes, metric names, environment.

Both sides import these constants, so the operator's decisions (retry or fail) and its reading
of progress from the chief's /metrics cannot drift from what the trainer does.
"""

from __future__ import annotations

import signal
from enum import IntEnum
from typing import Literal

PARAMS_DIR = "/etc/tftj"
# Writable scratch space (an emptyDir) in worker and TensorBoard pods, whose root filesystem
# is read-only: TensorFlow, Python's tempfile and the non-chief workers' throw-away save
# directories write here.
SCRATCH_DIR = "/tmp"
PARAMS_FILE = "params.yaml"


class ExitCode(IntEnum):
    """Trainer exit codes. Permanent ones are never retried; everything else non-zero is."""

    SUCCESS = 0
    UNEXPECTED = 1  # an unexpected error inside the trainer: retried (bounded by backoffLimit)
    USAGE = 2  # bad command line (argparse's convention)
    BAD_PARAMETERS = 3  # params file missing, unreadable or failing validation
    BAD_DATA = 4  # data missing, malformed, wrong shape, label out of range
    BAD_MODEL = 5  # model.builder not importable or returned something unusable
    STORAGE_FULL = 6  # no space left on the job's storage (checkpoint, logs or export)
    PEER_LOST = 10  # a peer worker failed or vanished (collective op failed)
    PREEMPTED = 11  # SIGTERM / preemption notice: stopped cleanly after a checkpoint


PERMANENT_EXIT_CODES = frozenset(
    {
        ExitCode.USAGE,
        ExitCode.BAD_PARAMETERS,
        ExitCode.BAD_DATA,
        ExitCode.BAD_MODEL,
        # A retry resumes from the last checkpoint and fails at the same save, one epoch of
        # every worker later: the space must be freed or storage.size raised first.
        ExitCode.STORAGE_FULL,
    }
)

SIGNAL_EXIT_OFFSET = 128  # a process killed by signal n exits 128+n (containers, shells)

# How a worker ends when it was stopped BECAUSE another one failed: its Job (backoffLimit 0)
# terminates the rest of the group (SIGTERM: 143, or the trainer's clean stop after a
# checkpoint: PREEMPTED), or its collective op failed with the peer (PEER_LOST). Pod times
# have whole seconds, so these often tie with the real cause; they never are the cause.
CONSEQUENCE_EXIT_CODES = frozenset(
    {ExitCode.PEER_LOST, ExitCode.PREEMPTED, SIGNAL_EXIT_OFFSET + signal.SIGTERM}
)

# Signals a process gets from its own native code failing: abort() (an assertion in oneDNN,
# CUDA or TensorFlow's C++), an invalid memory access, a bus error, an arithmetic trap, an
# illegal instruction. The trainer is deterministic for a given image, parameters and data
# (seeded init, shuffling and splits), so such a crash recurs at the same step on every
# attempt: retrying it would burn backoffLimit x workers x GPUs only to fail later with the
# same signal. It is therefore not retried. The rare non-deterministic cause (a faulty GPU or
# node) is better handled by resubmitting, or by the cluster draining that node. Kubernetes'
# podFailurePolicy draws the same line: FailJob on exit codes that mean a bug, Ignore/retry on
# disruptions (DisruptionTarget). SIGKILL (137) is NOT a crash: it is how the kubelet ends an
# OOM-killed, evicted or deleted container, none of which the trainer caused; it is retried,
# as is SIGTERM (143, preemption).
CRASH_SIGNALS = frozenset(
    {signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}
)

FailureKind = Literal["Permanent", "Crashed", "Retryable"]


def exit_signal(exit_code: int) -> signal.Signals | None:
    """The signal an exit code > 128 stands for (134 -> SIGABRT), None for ordinary codes."""
    if exit_code <= SIGNAL_EXIT_OFFSET:
        return None
    try:
        return signal.Signals(exit_code - SIGNAL_EXIT_OFFSET)
    except ValueError:
        return None


def failure_kind(exit_code: int) -> FailureKind:
    """How the operator (and `tftj run`) treats a worker that exited with `exit_code` != 0.

    Permanent: the trainer's own verdict on the parameters, data or model (never retried).
    Crashed: a native crash of the trainer (CRASH_SIGNALS; never retried, see above).
    Retryable: everything else, including 137 (SIGKILL: OOM kill, eviction, deletion) and
    143 (SIGTERM), bounded by runPolicy.backoffLimit.
    """
    if exit_code in PERMANENT_EXIT_CODES:
        return "Permanent"
    if exit_signal(exit_code) in CRASH_SIGNALS:
        return "Crashed"
    return "Retryable"


def is_retried(kind: FailureKind) -> bool:
    return kind == "Retryable"


def exit_code_meaning(exit_code: int) -> str:
    """What an exit code says, for status and logs: BAD_DATA, "SIGABRT: the trainer crashed",
    "SIGKILL: killed (OOM-killed, evicted or deleted)", "signal 60", "unknown"."""
    try:
        return ExitCode(exit_code).name
    except ValueError:
        pass
    sig = exit_signal(exit_code)
    if sig is None:
        return f"signal {exit_code - SIGNAL_EXIT_OFFSET}" if exit_code > 128 else "unknown"
    if sig in CRASH_SIGNALS:
        return f"{sig.name}: the trainer crashed in native code"
    if sig == signal.SIGKILL:
        return "SIGKILL: killed (OOM-killed, evicted or deleted)"
    return f"{sig.name}: killed by a signal"


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
