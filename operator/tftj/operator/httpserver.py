"""A small HTTP/1.1 server for the admission webhook: what an apiserver's webhook client and a
kubelet's readiness probe send, and a clear refusal of everything else.

Why not aiohttp: per review, aiohttp's request and response machinery cost more than the review
itself. Hammered alone with 50 reviews in flight on this 2-core machine (one process), p50 was
~28 ms with aiohttp and ~12-17 ms with this server; docs/operator-scale.md has the figures.

What it speaks: requests with a Content-Length body (or none), kept alive as HTTP/1.1 says,
processed one at a time per connection in order (pipelining included), `Expect: 100-continue`.
What it refuses, each with the status and a reason and then closing the connection: a request
line or header it cannot read (400), a head over MAX_HEAD_BYTES (431), Transfer-Encoding
(411: the apiserver always sends Content-Length), a body over the server's limit (413: the body
is read and dropped first, so the client reads the answer instead of a reset). A connection
idle (or stuck mid-request) for `idle_seconds` is closed.

The parsing (`parse_head`, `encode`) is pure; `HttpServer` is the asyncio edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

log = logging.getLogger("tftj.operator")

MAX_HEAD_BYTES = 16 * 1024
IDLE_SECONDS = 75.0  # as aiohttp's keep-alive timeout (Go's clients keep 90 s)
SWEEP_SECONDS = 10.0
BACKLOG = 1024
DISCARD_FACTOR = 4  # of a refused body, at most this many times the limit is read and dropped
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class BadRequest(Exception):
    """A request the server cannot serve: answered with `status` and `reason`, then closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Head:
    method: str
    target: str
    keep_alive: bool
    length: int
    expect_continue: bool = False


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


#: Answers one request (method, target, body). Called on the event loop, or on a thread of the
#: loop's default executor for a body over the server's `inline_body_bytes`.
Route = Callable[[str, str, bytes], Response]


def parse_head(raw: bytes) -> Head:
    """The request line and headers before the blank line; BadRequest naming what is wrong."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0") or not parts[1]:
        raise BadRequest(400, "not an HTTP/1.x request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequest(400, f"malformed header line {line[:80]!r}")
        key = name.lower()
        value = value.strip()
        if key in headers and key in ("content-length", "transfer-encoding", "host"):
            raise BadRequest(400, f"header {name} given twice")
        headers[key] = value
    if "transfer-encoding" in headers:
        raise BadRequest(411, "send the body with Content-Length, not Transfer-Encoding")
    length_text = headers.get("content-length", "0")
    if not (length_text.isascii() and length_text.isdigit()):
        raise BadRequest(400, f"Content-Length: not a number: {length_text[:40]!r}")
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return Head(
        method=method,
        target=target,
        keep_alive=keep_alive,
        length=int(length_text),
        expect_continue=headers.get("expect", "").lower() == "100-continue",
    )


def encode(response: Response, *, keep_alive: bool, with_body: bool = True) -> bytes:
    """The response's bytes on the wire (HEAD: the headers of the GET, no body)."""
    reason = HTTPStatus(response.status).phrase
    head = (
        f"HTTP/1.1 {response.status} {reason}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        + ("" if keep_alive else "Connection: close\r\n")
        + "\r\n"
    ).encode("latin-1")
    return head + response.body if with_body else head


def text(status: int, reason: str) -> Response:
    return Response(status, reason.encode() + b"\n")


class _Connection(asyncio.Protocol):
    """One client connection: requests read, answered and written in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.head: Head | None = None
        self.busy = False  # a request is being answered on a thread
        self.writes_paused = False
        self.discard = 0  # bytes of a refused body still to read and drop before closing
        self.last_active = self.loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def pause_writing(self) -> None:
        self.writes_paused = True  # a client not reading its answers: read no more requests
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writes_paused = False
        if self.transport is not None and not self.busy:
            self.transport.resume_reading()
        self._process()

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return  # closed by us; what was still in flight is dropped
        self.last_active = self.loop.time()
        if self.discard:
            self.discard = max(0, self.discard - len(data))
            if not self.discard:
                self.close()
            return
        self.buffer += data
        self._process()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def _process(self) -> None:
        """Answer every complete request in the buffer, in order, until one must wait."""
        while self.transport is not None and not self.busy and not self.writes_paused:
            if self.head is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > MAX_HEAD_BYTES:
                        self._refuse(431, f"request head over {MAX_HEAD_BYTES} bytes")
                    return
                try:
                    self.head = parse_head(bytes(self.buffer[:end]))
                except BadRequest as exc:
                    self._refuse(exc.status, exc.reason)
                    return
                del self.buffer[: end + 4]
                if self.head.length > self.server.max_body_bytes:
                    self._refuse_body(self.head.length)
                    return
                if self.head.expect_continue:
                    self.transport.write(_CONTINUE)
            if len(self.buffer) < self.head.length:
                return
            head, self.head = self.head, None
            body = bytes(self.buffer[: head.length])
            del self.buffer[: head.length]
            if len(body) > self.server.inline_body_bytes:
                self.busy = True
                self.transport.pause_reading()
                self.server.track(self.loop.create_task(self._answer_on_thread(head, body)))
                return
            self._send(head, self.server.answer(head, body))

    async def _answer_on_thread(self, head: Head, body: bytes) -> None:
        response = await self.loop.run_in_executor(None, self.server.answer, head, body)
        self.busy = False
        if self.transport is None:
            return  # the client left meanwhile
        self._send(head, response)
        if self.transport is not None and not self.writes_paused:
            self.transport.resume_reading()
        self._process()

    def _send(self, head: Head, response: Response) -> None:
        if self.transport is None:
            return
        self.last_active = self.loop.time()
        self.transport.write(
            encode(response, keep_alive=head.keep_alive, with_body=head.method != "HEAD")
        )
        if not head.keep_alive:
            self.close()

    def _refuse(self, status: int, reason: str) -> None:
        if self.transport is not None:
            self.transport.write(encode(text(status, reason), keep_alive=False))
        self.close()

    def _refuse_body(self, length: int) -> None:
        """413, then read and drop the body the client is still sending, then close: closing
        at once would reset the connection under a client still writing, and it would never
        read the reason."""
        assert self.transport is not None
        limit = self.server.max_body_bytes
        self.transport.write(
            encode(text(413, f"request body over {limit} bytes"), keep_alive=False)
        )
        self.head = None
        # Bounded: a client declaring an absurd size is cut off after DISCARD_FACTOR x limit.
        self.discard = max(0, min(length, DISCARD_FACTOR * limit) - len(self.buffer))
        self.buffer.clear()
        if not self.discard:
            self.close()


class HttpServer:
    """Serves `route` over TLS until close(); bodies over `inline_body_bytes` are answered on a
    thread, so that no single request holds up the event loop."""

    def __init__(
        self,
        route: Route,
        *,
        ssl_context: ssl.SSLContext,
        max_body_bytes: int,
        inline_body_bytes: int,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.route = route
        self.ssl_context = ssl_context
        self.max_body_bytes = max_body_bytes
        self.inline_body_bytes = inline_body_bytes
        self.idle_seconds = idle_seconds
        self.connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def answer(self, head: Head, body: bytes) -> Response:
        try:
            return self.route(head.method, head.target, body)
        except Exception:
            # A bug of ours; the route itself turns every bad input into a 4xx or a denial.
            log.exception("HTTP %s %s failed", head.method, head.target)
            return text(500, "internal error")

    def track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, *, host: str = "", port: int = 0, reuse_port: bool = False) -> int:
        """Listen on `host`:`port` (0: the kernel picks; with `reuse_port`, SO_REUSEPORT);
        the port."""
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self),
            host or None,
            port,
            ssl=self.ssl_context,
            reuse_address=True,
            reuse_port=reuse_port,
            backlog=BACKLOG,
        )
        self._sweeper = asyncio.get_running_loop().create_task(
            self._sweep(), name="http-idle-sweep"
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(SWEEP_SECONDS, self.idle_seconds))
            stale = loop.time() - self.idle_seconds
            for connection in [c for c in self.connections if c.last_active < stale]:
                if not connection.busy:
                    connection.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
