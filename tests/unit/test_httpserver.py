"""The webhook's HTTP/1.1 server (tftj.operator.httpserver): the requests an apiserver and a
probe send are answered in order on kept-alive connections; what it cannot serve is refused
with a status and a reason, never a hang or a traceback."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopthread import LoopThread
from tftj.operator.certs import CertPaths, ensure_certs
from tftj.operator.httpserver import (
    MAX_HEAD_BYTES,
    BadRequest,
    Head,
    HttpServer,
    Response,
    parse_head,
)
from tftj.operator.webhook import tls_context

INLINE = 1024  # bodies over this are answered on a thread
LIMIT = 64 * 1024
IDLE = 0.5


def echo(method: str, target: str, body: bytes) -> Response:
    try:
        asyncio.get_running_loop()
        on = "loop"
    except RuntimeError:
        on = "thread"
    return Response(200, f"{method} {target} {len(body)} {on}".encode())


class Running(LoopThread):
    """An HttpServer with the `echo` route on its own event loop in a thread."""

    def __init__(self, certs: CertPaths) -> None:
        self.server = HttpServer(
            echo,
            ssl_context=tls_context(certs),
            max_body_bytes=LIMIT,
            inline_body_bytes=INLINE,
            idle_seconds=IDLE,
        )
        self.port = 0

        async def start() -> None:
            self.port = await self.server.start(host="127.0.0.1")

        super().__init__(start, self.server.close)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return ensure_certs(tmp_path_factory.mktemp("certs"), ["127.0.0.1"])


@pytest.fixture(scope="module")
def running(certs: CertPaths) -> Iterator[Running]:
    running = Running(certs)
    yield running
    running.stop()


class Raw:
    """A TLS connection sending bytes as given and reading what comes back."""

    def __init__(self, port: int, cafile: Path) -> None:
        context = ssl.create_default_context(cafile=str(cafile))
        self.sock = context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
        )
        self.received = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until(self, marker: bytes, count: int = 1) -> bytes:
        while self.received.count(marker) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.received += chunk
        return self.received

    def read_to_end(self) -> bytes:
        """Everything until the server closes the connection."""
        while chunk := self.sock.recv(65536):
            self.received += chunk
        return self.received

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(running: Running, certs: CertPaths) -> Iterator[Raw]:
    raw = Raw(running.port, certs.cafile)
    yield raw
    raw.close()


def post(target: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {target} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---- the head, parsed


def test_a_request_head_is_read_with_http_1_1_keep_alive_rules() -> None:
    head = parse_head(b"POST /v?timeout=5s HTTP/1.1\r\nHost: x\r\nContent-Length: 12")
    assert head == Head("POST", "/v?timeout=5s", keep_alive=True, length=12)
    assert not parse_head(b"GET / HTTP/1.1\r\nConnection: close").keep_alive
    assert not parse_head(b"GET / HTTP/1.0").keep_alive
    assert parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive").keep_alive
    assert parse_head(b"POST / HTTP/1.1\r\nExpect: 100-continue").expect_continue


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"GARBAGE", 400, "request line"),
        (b"GET / HTTP/2.0", 400, "request line"),
        (b"GET / HTTP/1.1\r\nno colon here", 400, "malformed header"),
        (b"GET / HTTP/1.1\r\nContent-Length: 1e3", 400, "Content-Length"),
        (b"GET / HTTP/1.1\r\nContent-Length: -1", 400, "Content-Length"),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", 400, "twice"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked", 411, "Content-Length"),
    ],
)
def test_a_head_it_cannot_serve_is_refused_naming_why(raw: bytes, status: int, reason: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_head(raw)
    assert refused.value.status == status and reason in refused.value.reason


# ---- on the wire


def test_pipelined_requests_are_answered_in_order_on_one_connection(raw: Raw) -> None:
    big = b"x" * (INLINE + 1)  # answered on a thread: still in its place in the order
    raw.send(post("/a", b"12") + post("/b", big) + post("/c", b""))
    received = raw.read_until(b"HTTP/1.1 200 OK", 3)
    answers = [part.split(b"\r\n\r\n", 1)[1] for part in received.split(b"HTTP/1.1 200 OK")[1:]]
    assert answers == [b"POST /a 2 loop", b"POST /b 1025 thread", b"POST /c 0 loop"]


def test_expect_100_continue_is_honoured(raw: Raw) -> None:
    raw.send(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    assert raw.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    raw.send(b"abc")
    assert raw.read_until(b"POST /a 3").endswith(b"POST /a 3 loop")


def test_head_gets_the_headers_without_the_body(raw: Raw) -> None:
    raw.send(b"HEAD /readyz HTTP/1.1\r\nConnection: close\r\n\r\n")
    received = raw.read_to_end()
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert (
        b"Content-Length: 19\r\n" in received
    )  # of "HEAD /readyz 0 loop" and received.endswith(b"\r\n\r\n")


def test_connection_close_is_obeyed(raw: Raw) -> None:
    raw.send(post("/a", b"1", "Connection: close"))
    received = raw.read_to_end()  # returns: the server closed
    assert b"Connection: close" in received and received.endswith(b"POST /a 1 loop")


def test_a_head_over_the_limit_gets_431_and_the_connection_closes(raw: Raw) -> None:
    raw.send(b"GET / HTTP/1.1\r\nX-Long: " + b"a" * (MAX_HEAD_BYTES + 1))
    assert raw.read_to_end().startswith(b"HTTP/1.1 431 ")


def test_a_body_over_the_limit_gets_413_after_it_was_sent(raw: Raw) -> None:
    raw.send(post("/a", b"x" * (LIMIT + 1)))  # all of it: no reset under the sender
    received = raw.read_to_end()
    assert received.startswith(b"HTTP/1.1 413 ") and b"over 65536 bytes" in received


def test_a_malformed_request_gets_400_with_the_reason(raw: Raw) -> None:
    raw.send(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    received = raw.read_to_end()
    assert received.startswith(b"HTTP/1.1 411 ") and b"Content-Length" in received


def test_an_idle_or_stuck_connection_is_closed(raw: Raw) -> None:
    raw.send(b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nhalf")  # never finished
    started = time.monotonic()
    assert raw.read_to_end() == b""
    assert time.monotonic() - started < 10  # closed by the server, not by our timeout
