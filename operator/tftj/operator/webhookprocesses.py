"""The admission webhook served by processes of its own, forked by `tftj operator` first thing.

Why processes: served from the operator's process, the webhook shares one GIL with kopf's event
loop, the informers and up to --workers reconcile threads; in a burst of creates (the moment it
is needed) each review waits behind the reconciles of the jobs admitted just before. And one
Python process answers a review in ~0.56 ms (TLS, HTTP and validation), so 50 reviews in flight
wait ~28 ms at the median. Here N processes listen on one port, each with its own interpreter
and event loop: measured figures in docs/operator-scale.md.

Why fork, and why first: the children are forked before the operator imports kopf and the
kubernetes client and before any thread exists (forking a threaded process can copy a held
lock). They share the parent's imported pages (tftj.api) copy-on-write, so each costs its
private memory only, not another interpreter's imports.

The parent first checks that nothing listens on the port (a bad port or address fails `tftj
operator` at once, with the reason); then every child listens on it with SO_REUSEPORT and the
kernel spreads the connections over them. Every replica runs them, leader or not, so the chart's readiness probe (answered by the same
servers) still says whether this pod admits.

Lifecycle: a child dies with the operator (PR_SET_PDEATHSIG, e.g. a SIGKILLed leader); the
operator stops them last when it stops, and exits when one ends on its own (`on_exit`), so the
kubelet restarts the pod instead of it running on with fewer webhook processes than asked.
Children are in a session of their own: Ctrl-C in a terminal reaches the operator, which stops
them. Their reviews are counted in the operator's own metrics: a child writes one line per
review ("OPERATION RESULT SECONDS") to a pipe it never blocks on; a thread of the operator
observes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import os
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tftj.operator.certs import CertPaths
from tftj.operator.webhook import Observe, WebhookServer, record

log = logging.getLogger("tftj.operator")

READY = "ready"
#: Lines a child keeps while its pipe is full; beyond, the oldest are dropped (the metrics then
#: undercount; admission never waits for the operator).
MAX_PENDING_BYTES = 4 * 1024 * 1024
FLUSH_SECONDS = 0.2
STOP_SECONDS = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class WebhookProcessError(RuntimeError):
    """A webhook process did not start serving."""


def free_port(addr: str, port: int) -> int:
    """`port` (or one the kernel picks for 0) if nothing listens there, else OSError. Bound
    without SO_REUSEPORT: a socket that has it (say, another operator's webhook process) would
    otherwise let ours share its port silently."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((addr, port))
        return int(probe.getsockname()[1])


@dataclass
class _Child:
    pid: int
    events_fd: int  # the parent's (read) end of the child's pipe
    buffer: bytes = b""
    ready: bool = False
    exit_code: int | None = None  # once it has ended


class WebhookProcesses:
    """Forks `processes` children serving the webhook on one socket; turns their lines into
    metrics; reports the unexpected end of any."""

    def __init__(
        self,
        certs: CertPaths,
        *,
        addr: str,
        port: int,
        processes: int,
        on_exit: Callable[[int], None],
        observe: Observe = record,
        json_logs: bool = False,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.certs, self.addr, self.port, self.processes = certs, addr, port, processes
        self.on_exit, self.observe, self.json_logs = on_exit, observe, json_logs
        self.children: list[_Child] = []
        self._started = False  # every child served: from now on an end is reported
        self._stopping = False
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> WebhookProcesses:
        """Fork the children (call before any other thread exists) and wait until each serves.
        OSError if the port cannot be had; WebhookProcessError if a child does not serve."""
        self.port = free_port(self.addr, self.port)
        parent = os.getpid()
        # What the operator imported so far is shared with the children copy-on-write; frozen,
        # the garbage collector no longer writes to those objects' pages (in either process).
        gc.freeze()
        for _ in range(self.processes):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: never returns
                for fd in (read_fd, *(child.events_fd for child in self.children)):
                    os.close(fd)
                _child_main(self.addr, self.port, self.certs, write_fd, parent, self.json_logs)
            os.close(write_fd)
            self.children.append(_Child(pid, read_fd))
        self._reader = threading.Thread(target=self._read, name="webhook-processes", daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout) or self._ended_code() is not None:
            self.stop()
            raise WebhookProcessError(
                f"the admission webhook's processes did not all serve on {self.addr}:"
                f"{self.port} within {timeout:.0f} s (their log is above)"
            )
        self._started = True
        code = self._ended_code()
        if code is not None:  # one ended between the wait and the line above: not unreported
            self.on_exit(code)
        return self

    def _ended_code(self) -> int | None:
        return next((c.exit_code for c in self.children if c.exit_code is not None), None)

    def _read(self) -> None:
        selector = selectors.DefaultSelector()
        for each in self.children:
            selector.register(each.events_fd, selectors.EVENT_READ, each)
        open_pipes = len(self.children)
        while open_pipes:
            for key, _ in selector.select():
                child: _Child = key.data
                data = os.read(child.events_fd, 65536)
                if data:
                    self._lines(child, data)
                    continue
                selector.unregister(child.events_fd)
                os.close(child.events_fd)
                open_pipes -= 1
                self._ended(child)
        selector.close()

    def _lines(self, child: _Child, data: bytes) -> None:
        *lines, child.buffer = (child.buffer + data).split(b"\n")
        for line in lines:
            fields = line.split()
            if len(fields) == 3:
                with contextlib.suppress(ValueError):
                    self.observe(fields[0].decode(), fields[1].decode(), float(fields[2]))
            elif fields == [READY.encode()]:
                child.ready = True
                if all(c.ready for c in self.children):
                    self._ready.set()

    def _ended(self, child: _Child) -> None:
        """The child's pipe closed: it has exited (or is about to)."""
        _, status = os.waitpid(child.pid, 0)
        code = child.exit_code = os.waitstatus_to_exitcode(status)
        self._ready.set()  # start() must not wait out its timeout for a dead child
        if self._started and not self._stopping:
            log.error("admission webhook process %d ended (exit code %s)", child.pid, code)
            self.on_exit(code)

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Stop the children; returns once they have exited and their last lines are counted."""
        self._stopping = True
        for child in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
        if self._reader is None:
            return
        self._reader.join(timeout)
        if self._reader.is_alive():
            for child in self.children:
                if child.exit_code is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGKILL)
            self._reader.join(timeout)


# ---- a child


class _Events:
    """A child's end of its pipe: non-blocking, buffered, flushed by the event loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = bytearray()
        self.dropped = 0
        # A big review is answered on a thread (tftj.operator.httpserver) and counted there.
        self.lock = threading.Lock()

    def send(self, line: str) -> None:
        with self.lock:
            self.pending += line.encode()
            if len(self.pending) > MAX_PENDING_BYTES:
                cut = self.pending.index(b"\n", len(self.pending) - MAX_PENDING_BYTES) + 1
                self.dropped += self.pending[:cut].count(b"\n")
                del self.pending[:cut]

    def observe(self, operation: str, result: str, seconds: float) -> None:
        self.send(f"{operation} {result} {seconds:.6f}\n")

    def flush(self) -> None:
        with self.lock, contextlib.suppress(BlockingIOError):
            if self.pending:
                del self.pending[: os.write(self.fd, self.pending)]

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self.flush()
            if self.dropped:
                log.warning("admission webhook: %d metric events dropped (pipe full)", self.dropped)
                self.dropped = 0


def _die_with(parent: int) -> None:
    """SIGKILL this process when the operator's process ends, however it ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the operator died before prctl took effect
        os._exit(1)


async def _serve(addr: str, port: int, certs: CertPaths, events: _Events) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with WebhookServer(certs, addr=addr, port=port, reuse_port=True, observe=events.observe):
        events.send(f"{READY}\n")
        events.flush()
        flusher = asyncio.create_task(events.flush_forever())
        await stop.wait()
        flusher.cancel()


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, as the operator logs with --log-format=json."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": self.formatTime(record),
            "severity": record.levelname.lower(),
            "message": record.getMessage(),
            "process": f"webhook {record.process}",
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _log_to_stderr(json_logs: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        _JsonFormatter()
        if json_logs
        else logging.Formatter("%(asctime)s %(levelname)s [webhook %(process)d] %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def _child_main(
    addr: str, port: int, certs: CertPaths, events_fd: int, parent: int, json_logs: bool
) -> None:
    """A forked child's whole life. os._exit at the end: the operator's atexit handlers and
    `finally` blocks (and a test runner's, when forked under one) belong to the parent."""
    code = 1
    try:
        os.setsid()
        _die_with(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _log_to_stderr(json_logs)
        events = _Events(events_fd)
        os.set_blocking(events_fd, False)
        asyncio.run(_serve(addr, port, certs, events))
        os.set_blocking(events_fd, True)
        events.flush()
        code = 0
    except BaseException:
        log.exception("admission webhook process failed")
    finally:
        sys.stderr.flush()
        os._exit(code)
