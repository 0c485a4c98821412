"""`python -m tftj_trainer --params FILE [--storage-root DIR] [--metrics-port N]`.

Side effects live here: environment, logging, the metrics server, exit codes. A failure ends
with one line `tftj-trainer: error: ...` on stderr (and in the termination log Kubernetes shows
as the container's termination message) and an exit code from tftj.api.contract.ExitCode.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from tftj.api.contract import ENV_ATTEMPT, ENV_JOB_NAME, PARAMS_DIR, PARAMS_FILE, ExitCode

from tftj_trainer.exitcodes import (
    ParametersError,
    TrainerError,
    one_line,
    storage_full,
    tensorflow_error_code,
)

log = logging.getLogger("tftj_trainer")

TERMINATION_LOG = "/dev/termination-log"  # Kubernetes' default terminationMessagePath


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tftj_trainer",
        description="Train one worker of a TFTrainingJob from its resolved parameters.",
    )
    parser.add_argument(
        "--params",
        default=f"{PARAMS_DIR}/{PARAMS_FILE}",
        help="resolved parameters YAML (default: %(default)s)",
    )
    parser.add_argument(
        "--storage-root",
        default=None,
        help="job storage root for logs/checkpoints/export (default: "
        "$TFTJ_STORAGE_ROOT, else storage.mountPath)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="port of /metrics (default: metrics.port; 0 picks a free one)",
    )
    parser.add_argument(
        "--metrics-address",
        default="0.0.0.0",
        help="address /metrics binds to (default: %(default)s)",
    )
    parser.add_argument(
        "--termination-log",
        default=os.environ.get("TFTJ_TERMINATION_LOG"),
        help="file receiving the one-line failure reason (default: "
        f"{TERMINATION_LOG} when it exists, as in a Kubernetes container)",
    )
    return parser.parse_args(argv)


def report_failure(code: int, message: str, termination_log: str | None) -> int:
    line = one_line(message)
    print(f"tftj-trainer: error: {line}", file=sys.stderr, flush=True)
    # Kubernetes mounts the termination log; elsewhere the default path is not ours to create.
    path = Path(termination_log) if termination_log else Path(TERMINATION_LOG)
    if termination_log or path.exists():
        with contextlib.suppress(OSError):  # best effort: stderr already has it
            path.write_text(f"exit code {code}: {line}\n")
    return code


def run(args: argparse.Namespace) -> int:
    # Parameters are checked before TensorFlow is imported: a bad file fails in a second.
    from tftj_trainer.config import load_params, log_levels, metrics_port, storage_paths

    params = load_params(args.params)
    levels = log_levels(params.spec.logging.level)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", levels.tf_cpp)
    logging.basicConfig(
        level=levels.others, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("tftj_trainer").setLevel(levels.trainer)

    from tftj_trainer.cluster import cluster_from_env, group_problems, make_strategy

    cluster = cluster_from_env(os.environ)
    paths = storage_paths(params, args.storage_root)
    attempt = int(os.environ.get(ENV_ATTEMPT, "0") or 0)
    try:
        import tensorflow as tf

        from tftj_trainer.metrics import TrainerMetrics
        from tftj_trainer.training import train

        tf.get_logger().setLevel(levels.others)
        errors, warnings = group_problems(
            params, cluster, len(tf.config.list_physical_devices("GPU"))
        )
        if errors:
            raise ParametersError(errors[0])
        for warning in warnings:
            log.warning("%s", warning)
        strategy = make_strategy(cluster)
        metrics = TrainerMetrics(os.environ.get(ENV_JOB_NAME, params.job.name), cluster.index)
        port = metrics.serve(metrics_port(params, args.metrics_port), args.metrics_address)
        log.info("worker %d: /metrics on port %d", cluster.index, port)
        train(params, paths, cluster, strategy, metrics, attempt)
    except TrainerError:
        raise
    except Exception as error:
        full = storage_full(error, paths.root)
        if full is not None:
            raise full from None
        code = tensorflow_error_code(error)
        if code is None:
            raise
        raise TrainerError(f"{type(error).__name__}: {error}", code) from None
    log.info("worker %d: training finished", cluster.index)
    return ExitCode.SUCCESS


MALLOC_ARENAS = 2


def bound_malloc_arenas() -> None:
    """At most MALLOC_ARENAS glibc malloc arenas (an explicit MALLOC_ARENA_MAX wins).

    tf.data's threads each allocate and free a batch per step; glibc gives every thread its
    own arena and keeps their freed memory, so a worker's RSS grew with the number of steps it
    streamed (820 MB -> 1.2 GB from 1x to 4x the data, bench/data_bench.py) although its live
    memory did not. Two arenas keep it flat. Called before TensorFlow starts its threads.
    """
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to bound
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(-8, MALLOC_ARENAS)  # M_ARENA_MAX


def main(argv: Sequence[str] | None = None) -> int:
    bound_malloc_arenas()
    args = parse_args(argv)
    # A native crash (SIGABRT, SIGSEGV, ...) prints the Python stack of the crashing thread to
    # stderr; the worker pod's FallbackToLogsOnError turns it into the termination message, so
    # the operator's lastFailure says where it crashed, not only the signal.
    faulthandler.enable(all_threads=False)
    try:
        return run(args)
    except TrainerError as error:
        return report_failure(error.code, error.message, args.termination_log)
    except KeyboardInterrupt:
        return report_failure(ExitCode.PREEMPTED, "interrupted", args.termination_log)
    except Exception as error:
        logging.getLogger("tftj_trainer").exception("unexpected error")
        return report_failure(
            ExitCode.UNEXPECTED, f"{type(error).__name__}: {error}", args.termination_log
        )


@contextlib.contextmanager
def own_tempdir() -> Iterator[None]:
    """Python's temporary files in a directory of this process, removed when it is done.

    The worker leaves by os._exit (below), which skips atexit, where TensorFlow's autograph
    removes the sources it writes: without this every run would leave them in TMPDIR. The
    non-chief workers' throw-away checkpoints and exports land here too. Nothing is restored
    afterwards: the process exits right after.
    """
    path = tempfile.mkdtemp(prefix="tftj-trainer-")
    tempfile.tempdir = path
    os.environ["TMPDIR"] = path  # TensorFlow's native code reads the variable
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    with own_tempdir():
        code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: TensorFlow's collective threads can keep a finished worker from exiting.
    os._exit(int(code))
