"""A group of local trainer processes: start with TF_CONFIG on free loopback ports, watch,
and stop (SIGTERM, then SIGKILL after a grace period: TensorFlow catches SIGTERM and a worker
blocked in a collective may never act on it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tftj.api.contract import (
    ENV_ATTEMPT,
    ENV_JOB_NAME,
    ENV_STORAGE_ROOT,
    ENV_WORKER_HOSTS,
    ENV_WORKER_INDEX,
)

GRACE_SECONDS = 10.0


def scratch_dir(workdir: Path, index: int) -> Path:
    """A worker's TMPDIR, under the run's own directory.

    The trainer removes its temporary files (throw-away checkpoints and exports of the
    non-chief workers, autograph's sources) when it exits, but a SIGKILLed worker cannot: they
    would stay in the machine's /tmp for good. Here the group removes them.
    """
    return workdir / "workers" / f"tmp-{index}"


def free_ports(count: int) -> list[int]:
    """Ports the kernel reports free now (held open together so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Worker:
    index: int
    process: subprocess.Popen[bytes]
    log: Path
    termination_log: Path
    metrics_port: int
    scratch: Path

    def failure_message(self) -> str:
        """The worker's own one-line reason, else what killed it."""
        if self.termination_log.exists():
            text = self.termination_log.read_text().strip()
            if text:
                return text
        code = self.process.returncode
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code} (see {self.log})"


@dataclass
class WorkerGroup:
    workers: list[Worker] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        *,
        count: int,
        params: Path,
        workdir: Path,
        job: str,
        attempt: int,
        python: str = sys.executable,
    ) -> WorkerGroup:
        ports = free_ports(2 * count)
        hosts = ",".join(f"127.0.0.1:{port}" for port in ports[:count])
        logs = workdir / "workers"
        logs.mkdir(parents=True, exist_ok=True)
        group = cls()
        for index in range(count):
            scratch = scratch_dir(workdir, index)
            shutil.rmtree(scratch, ignore_errors=True)  # a killed earlier attempt's
            scratch.mkdir()
            env = dict(os.environ)
            env.pop("TF_CONFIG", None)  # built by the trainer from the operator's variables
            env.update(
                {
                    ENV_WORKER_HOSTS: hosts,
                    ENV_WORKER_INDEX: str(index),
                    ENV_ATTEMPT: str(attempt),
                    ENV_STORAGE_ROOT: str(workdir),
                    ENV_JOB_NAME: job,
                    "PYTHONUNBUFFERED": "1",
                    "TMPDIR": str(scratch),
                }
            )
            log = logs / f"worker-{index}.log"
            termination = logs / f"worker-{index}.termination"
            termination.unlink(missing_ok=True)
            with log.open("ab") as out:
                out.write(f"---- attempt {attempt} ----\n".encode())
                out.flush()
                process = subprocess.Popen(
                    [
                        python,
                        "-m",
                        "tftj_trainer",
                        "--params",
                        str(params),
                        "--storage-root",
                        str(workdir),
                        "--metrics-port",
                        str(ports[count + index]),
                        "--metrics-address",
                        "127.0.0.1",
                        "--termination-log",
                        str(termination),
                    ],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    # Own session: a terminal's Ctrl-C reaches `tftj run` only, which then
                    # stops the workers in order instead of them dying mid-save.
                    start_new_session=True,
                )
            group.workers.append(
                Worker(index, process, log, termination, ports[count + index], scratch)
            )
        group.write_state(workdir / "workers" / "state.json", attempt)
        return group

    def write_state(self, path: Path, attempt: int) -> None:
        """Pids and ports of the running attempt, for people (and tests) looking in."""
        path.write_text(
            json.dumps(
                {
                    "attempt": attempt,
                    "workers": [
                        {
                            "index": w.index,
                            "pid": w.process.pid,
                            "metricsPort": w.metrics_port,
                            "log": str(w.log),
                        }
                        for w in self.workers
                    ],
                },
                indent=2,
            )
        )

    @property
    def chief(self) -> Worker:
        return self.workers[0]

    def exited(self) -> list[Worker]:
        return [w for w in self.workers if w.process.poll() is not None]

    def failed(self) -> list[Worker]:
        return [w for w in self.exited() if w.process.returncode != 0]

    def all_succeeded(self) -> bool:
        return all(w.process.poll() == 0 for w in self.workers)

    def stop(self, grace: float = GRACE_SECONDS) -> None:
        """SIGTERM every live worker, SIGKILL those still alive after `grace` seconds."""
        for w in self.workers:
            if w.process.poll() is None:
                w.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for w in self.workers:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                w.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                w.process.kill()
                w.process.wait()
        self.remove_scratch()

    def remove_scratch(self) -> None:
        """Once every worker has exited: what they left in their TMPDIR."""
        for w in self.workers:
            shutil.rmtree(w.scratch, ignore_errors=True)
