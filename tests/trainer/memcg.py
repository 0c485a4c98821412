"""A memory cgroup a test creates for the processes it starts: a hard limit, as a pod's.

cgroup v1 (this machine: hierarchies under /sys/fs/cgroup/<controller>) or v2 (one unified
tree): the child is created under this process's own memory cgroup, so no privilege beyond
write access to it is needed (CAP_SYS_RESOURCE is not).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class MemoryCgroup:
    path: Path
    v2: bool

    def start(self, command: Sequence[str], **popen: Any) -> subprocess.Popen[str]:
        """`command` inside the cgroup from its first instruction (a shell joins, then execs)."""
        join = 'echo $$ > "$0" && exec "$@"'
        return subprocess.Popen(
            ["sh", "-c", join, str(self.path / "cgroup.procs"), *command], **popen
        )

    def failures(self) -> int:
        """How often an allocation hit the limit (v1 failcnt; v2 the `max` events)."""
        if self.v2:
            events = dict(
                line.split() for line in (self.path / "memory.events").read_text().splitlines()
            )
            return int(events.get("max", 0))
        return int((self.path / "memory.failcnt").read_text())


def own_memory_cgroup() -> tuple[Path, bool]:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") and (ROOT / "memory").is_dir():
            return ROOT / "memory" / path.lstrip("/"), False
        if controllers == "" and (ROOT / "cgroup.controllers").exists():
            return ROOT / path.lstrip("/"), True
    raise AssertionError(
        "no memory cgroup: this test needs cgroup v1 or v2 with a memory controller"
    )


@contextmanager
def memory_cgroup(limit_bytes: int) -> Iterator[MemoryCgroup]:
    parent, v2 = own_memory_cgroup()
    path = parent / f"tftj-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        (path / ("memory.max" if v2 else "memory.limit_in_bytes")).write_text(str(limit_bytes))
        swap = path / ("memory.swap.max" if v2 else "memory.memsw.limit_in_bytes")
        if swap.exists():  # no escaping the limit into swap
            swap.write_text("0" if v2 else str(limit_bytes))
        yield MemoryCgroup(path, v2)
    finally:
        path.rmdir()  # the processes started in it have exited (callers wait for them)


def wait_with_peak_rss(process: subprocess.Popen[Any], interval: float = 0.05) -> tuple[int, int]:
    """Wait for `process`; returns (exit code, its peak RSS in bytes).

    The peak is VmHWM of /proc/<pid>/status, read until the process exits: rusage's
    ru_maxrss would not do, Linux carries it across fork and exec, so a child of a large test
    process reports at least its parent's size.
    """
    status = Path(f"/proc/{process.pid}/status")
    peak = 0
    while process.poll() is None:
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) * 1024)
        time.sleep(interval)  # sampling a monotone high-water mark, not synchronising
    return process.returncode, peak
