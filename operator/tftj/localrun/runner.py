"""The `tftj run` loop: resolve, start the group, show progress, restart or stop like the operator.

A retryable failure (a lost peer, a killed worker) restarts ALL workers from the latest
checkpoint, up to runPolicy.backoffLimit times; a permanent one (bad data, bad parameters) ends
the run with the failing worker's one-line reason. Ctrl-C stops every worker cleanly.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tftj.api.contract import ExitCode, failure_kind, is_retried
from tftj.api.resolve import ResolvedParameters
from tftj.localrun.manifest import (
    ManifestError,
    local_parameters,
    previous_run_conflict,
    write_params,
)
from tftj.localrun.progress import progress_line, read_progress, summary_line
from tftj.localrun.workers import GRACE_SECONDS, Worker, WorkerGroup
from tftj.trainerprogress import TrainerProgress

POLL_SECONDS = 0.25
PROGRESS_SECONDS = 0.5
PLAIN_PROGRESS_SECONDS = 10.0  # when stdout is not a terminal: one line this often at most


@dataclass(frozen=True)
class RunOptions:
    manifest: Path
    workdir: Path
    workers: int | None = None
    grace_seconds: float = GRACE_SECONDS


class ProgressPrinter:
    """One self-updating line on a terminal; occasional plain lines in logs and pipes."""

    def __init__(self, out: TextIO) -> None:
        self.latest: TrainerProgress | None = None
        self.out = out
        self.tty = out.isatty()
        self.last_line = ""
        self.last_time = 0.0
        self.last_epoch = -1

    def columns(self) -> int:
        """The terminal's width now (it may have been resized); 80 for logs and pipes."""
        return shutil.get_terminal_size().columns if self.tty else 80

    def show(self, line: str, epoch: int) -> None:
        if line == self.last_line:
            return
        now = time.monotonic()
        if self.tty:
            self.out.write(f"\r{line}\x1b[K")
        elif epoch != self.last_epoch or now - self.last_time >= PLAIN_PROGRESS_SECONDS:
            self.out.write(line + "\n")
            self.last_time, self.last_epoch = now, epoch
        else:
            return
        self.out.flush()
        self.last_line = line

    def end(self) -> None:
        if self.tty and self.last_line:
            self.out.write("\n")
            self.out.flush()
        self.last_line = ""


def exit_code_of(worker: Worker) -> int:
    code = worker.process.returncode or 0
    return 128 - code if code < 0 else code  # -9 -> 137, as a container runtime reports it


def root_cause(failed: list[Worker]) -> Worker:
    """The failure to report: a worker's own error rather than a survivor's 'peer lost'."""
    return min(failed, key=lambda w: (exit_code_of(w) == ExitCode.PEER_LOST, w.index))


def watch(group: WorkerGroup, printer: ProgressPrinter, deadline: float | None) -> Worker | None:
    """Wait for the group: None when all succeeded, else the worker that failed first."""
    next_progress = 0.0
    while True:
        failed = group.failed()
        if failed:
            return root_cause(failed)
        if group.all_succeeded():
            return None
        now = time.monotonic()
        if deadline is not None and now > deadline:
            raise DeadlineExceeded
        if now >= next_progress:
            progress = read_progress(group.chief.metrics_port)
            if progress is not None:
                printer.latest = progress
                printer.show(progress_line(progress, printer.columns()), progress.epoch)
            next_progress = now + PROGRESS_SECONDS
        time.sleep(POLL_SECONDS)  # a poll interval, not synchronisation


class DeadlineExceeded(Exception):
    pass


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def locations(params: ResolvedParameters, workdir: Path) -> list[str]:
    spec = params.spec
    lines = [
        f"  TensorBoard logs: {workdir / spec.logging.directory}   "
        f"(tensorboard --logdir {workdir / spec.logging.directory})",
        f"  checkpoints:      {workdir / spec.checkpoint.directory}",
    ]
    if spec.export.enabled:
        lines.append(f"  exported model:   {workdir / spec.export.directory}")
    lines.append(f"  worker logs:      {workdir / 'workers'}")
    return lines


def run_local(options: RunOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        params, warnings = local_parameters(options.manifest, options.workers)
    except ManifestError as error:
        print(f"tftj run: invalid manifest:\n{error}", file=err)
        return ExitCode.BAD_PARAMETERS
    for warning in warnings:
        print(f"tftj run: warning: {warning}", file=err)
    spec = params.spec
    workdir = options.workdir.resolve()
    conflict = previous_run_conflict(params, workdir)
    if conflict:
        print(f"tftj run: {conflict}", file=err)
        return ExitCode.BAD_PARAMETERS
    params_path = workdir / "params.yaml"
    write_params(params, params_path)
    count = spec.workers.replicas
    print(
        f"tftj run: job {params.job.name}, {count} worker(s) on CPU, parameters "
        f"{params.parameters_hash}, written to {params_path}",
        file=out,
    )
    for line in locations(params, workdir):
        print(line, file=out)
    out.flush()
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    started = time.monotonic()
    deadline_s = spec.run_policy.active_deadline_seconds
    deadline = started + deadline_s if deadline_s else None
    printer = ProgressPrinter(out)
    attempt = 0
    try:
        while True:
            group = WorkerGroup.start(
                count=count,
                params=params_path,
                workdir=workdir,
                job=params.job.name,
                attempt=attempt,
            )
            try:
                failed = watch(group, printer, deadline)
            except (KeyboardInterrupt, DeadlineExceeded) as stop:
                printer.end()
                why = (
                    "interrupted"
                    if isinstance(stop, KeyboardInterrupt)
                    else (f"runPolicy.activeDeadlineSeconds ({deadline_s}s) exceeded")
                )
                print(f"tftj run: {why}: stopping {count} worker(s)", file=err)
                group.stop(options.grace_seconds)
                print(
                    "tftj run: workers stopped; a new run resumes from the latest checkpoint",
                    file=err,
                )
                return 130 if isinstance(stop, KeyboardInterrupt) else 1
            printer.end()
            if failed is None:
                group.remove_scratch()
                took = time.monotonic() - started
                print(f"tftj run: training succeeded in {took:.1f}s", file=out)
                if printer.latest is not None and printer.latest.metrics:
                    print(f"  last reported:    {summary_line(printer.latest)}", file=out)
                for line in locations(params, workdir):
                    print(line, file=out)
                return ExitCode.SUCCESS
            code = exit_code_of(failed)
            message = failed.failure_message()
            group.stop(options.grace_seconds)
            if not is_retried(failure_kind(code)) or attempt >= spec.run_policy.backoff_limit:
                print(f"tftj run: training failed: worker {failed.index}: {message}", file=err)
                return code if 0 < code < 128 else 1
            attempt += 1
            print(
                f"tftj run: worker {failed.index} failed ({message}); restarting all workers "
                f"from the latest checkpoint (restart {attempt} of "
                f"{spec.run_policy.backoff_limit})",
                file=err,
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
