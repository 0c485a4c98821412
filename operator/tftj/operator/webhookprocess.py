"""The admission webhook in a process of its own, started and watched by `tftj operator`.

Why a process: served from the operator's process, the webhook shared one GIL with kopf's
event loop and up to --workers reconcile threads. In a burst of creates (the very moment it
is needed) its requests waited behind the reconciles of the jobs admitted just before: see
docs/benchmarks.md, "Operator vs. the Go peer", for the create latency with and without the
webhook. Here it has a Python interpreter, an event loop and a share of the CPUs to itself;
it imports only tftj.api, aiohttp and prometheus_client (no kopf, no kubernetes client).

Every replica runs one (leader or not), so the chart's readiness probe still says whether this
pod's webhook answers. The child dies with the operator (PR_SET_PDEATHSIG); when the child
ends on its own, the operator is told (on_exit) and exits, so the kubelet restarts the pod.

Its admissions are counted in the operator's own metrics: the child writes one line per review
("OPERATION RESULT SECONDS") to an inherited pipe and a thread of the operator observes them.
The child never blocks on that pipe: lines wait in a bounded buffer while it is full.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from tftj.operator.certs import CertPaths
from tftj.operator.webhook import WebhookServer, record

log = logging.getLogger("tftj.operator")

READY = "ready"
#: Lines kept for the operator while the pipe is full; beyond, the oldest are dropped (the
#: metrics undercount, admission never waits).
MAX_PENDING_BYTES = 4 * 1024 * 1024
FLUSH_SECONDS = 0.2
PR_SET_PDEATHSIG = 1


class WebhookProcessError(RuntimeError):
    """The webhook's process did not start listening."""


class WebhookProcess:
    """Starts the child, turns its lines into metrics, and reports its unexpected end."""

    def __init__(
        self,
        certs: CertPaths,
        *,
        addr: str,
        port: int,
        on_exit: Callable[[int], None],
        observe: Callable[[str, str, float], None] = record,
    ) -> None:
        self.certs, self.addr, self.port = certs, addr, port
        self.on_exit, self.observe = on_exit, observe
        self.process: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._stopping = False
        self._reader: threading.Thread | None = None

    def command(self, events_fd: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tftj.operator.webhookprocess",
            f"--ca={self.certs.cafile}",
            f"--cert={self.certs.certfile}",
            f"--key={self.certs.keyfile}",
            f"--addr={self.addr}",
            f"--port={self.port}",
            f"--events-fd={events_fd}",
            f"--parent-pid={os.getpid()}",
        ]

    def start(self, timeout: float = 60) -> WebhookProcess:
        read_fd, write_fd = os.pipe()
        try:
            # Its own session: a signal to the operator's process group (Ctrl-C, a test's
            # killpg) reaches the operator, which stops the webhook last, as it stops itself.
            self.process = subprocess.Popen(
                self.command(write_fd), pass_fds=(write_fd,), start_new_session=True
            )
        finally:
            os.close(write_fd)
        self._reader = threading.Thread(
            target=self._read, args=(read_fd,), name="webhook-events", daemon=True
        )
        self._reader.start()
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            self.stop()
            raise WebhookProcessError(
                f"the admission webhook's process did not listen on {self.addr}:{self.port} "
                f"within {timeout:.0f} s (exit code {self.process.poll()}; its log is above)"
            )
        return self

    def _read(self, fd: int) -> None:
        with open(fd, encoding="utf-8", errors="replace") as events:
            for line in events:
                fields = line.split()
                if len(fields) == 3:
                    with contextlib.suppress(ValueError):
                        self.observe(fields[0], fields[1], float(fields[2]))
                elif len(fields) == 2 and fields[0] == READY:
                    self.port = int(fields[1])
                    self._ready.set()
        # End of the pipe: the child is gone.
        code = self.process.wait() if self.process is not None else -1
        self._ready.set()
        if not self._stopping:
            log.error("the admission webhook's process ended (exit code %s)", code)
            self.on_exit(code)

    def stop(self, timeout: float = 10) -> None:
        """Stop the child; returns once its last lines are counted."""
        self._stopping = True
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout)


# ---- the child


class _Events:
    """The child's end of the pipe: non-blocking, buffered, flushed by the loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = bytearray()
        self.dropped = 0

    def send(self, line: str) -> None:
        self.pending += line.encode()
        if len(self.pending) > MAX_PENDING_BYTES:
            cut = self.pending.index(b"\n", len(self.pending) - MAX_PENDING_BYTES) + 1
            self.dropped += self.pending[:cut].count(b"\n")
            del self.pending[:cut]

    def observe(self, operation: str, result: str, seconds: float) -> None:
        self.send(f"{operation} {result} {seconds:.6f}\n")

    def flush(self) -> None:
        if not self.pending:
            return
        with contextlib.suppress(BlockingIOError):
            written = os.write(self.fd, self.pending)
            del self.pending[:written]

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self.flush()
            if self.dropped:
                log.warning("admission webhook: %d metric events dropped (pipe full)", self.dropped)
                self.dropped = 0


def _die_with(parent_pid: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        sys.exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tftj.operator.webhookprocess")
    for name in ("ca", "cert", "key", "addr"):
        parser.add_argument(f"--{name}", required=True)
    for name in ("port", "events-fd", "parent-pid"):
        parser.add_argument(f"--{name}", type=int, required=True)
    args = parser.parse_args(argv)
    _die_with(args.parent_pid)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [webhook] %(message)s"
    )
    certs = CertPaths(Path(args.ca), Path(args.cert), Path(args.key))
    events = _Events(args.events_fd)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = WebhookServer(certs, addr=args.addr, port=args.port, observe=events.observe)
        async with server:
            os.write(events.fd, f"{READY} {server.port}\n".encode())
            os.set_blocking(events.fd, False)
            flusher = asyncio.create_task(events.flush_forever())
            await stop.wait()
            flusher.cancel()
        os.set_blocking(events.fd, True)
        events.flush()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
