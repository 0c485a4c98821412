"""tftj.operator.kube without an apiserver: the progress scrape against real, misbehaving
HTTP servers on loopback, through observe() and reconcile() as the controller runs them."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from test_operator_reconcile import batch_job, make_job, pod, step
from tftj.operator.kube import Kube
from tftj.operator.reconcile import reconcile

GOOD = (
    b"# TYPE tftj_trainer_epoch gauge\n"
    b'tftj_trainer_epoch{job="mnist",worker="0"} 3.0\n'
    b"# TYPE tftj_trainer_epochs_target gauge\n"
    b'tftj_trainer_epochs_target{job="mnist",worker="0"} 10.0\n'
    b"# TYPE tftj_trainer_step gauge\n"
    b'tftj_trainer_step{job="mnist",worker="0"} 300.0\n'
    b"# TYPE tftj_trainer_loss gauge\n"
    b'tftj_trainer_loss{job="mnist",split="train",worker="0"} 0.25\n'
)


def response(body: bytes, status: str = "200 OK", headers: bytes = b"") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n".encode()
        + headers
        + b"Connection: close\r\n\r\n"
        + body
    )


# What a chief's /metrics endpoint can send instead of a good answer; each raises something
# different inside urllib/http.client/the exposition parser.
MISBEHAVIOURS: dict[str, bytes | None] = {
    # IncompleteRead: Content-Length promises more than ever arrives.
    "body shorter than its Content-Length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n" + GOOD[:90]
    ),
    # a body cut at a line boundary parses fine, as a step of 0: only Content-Length tells
    "body cut after a whole line": (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(GOOD)
        + GOOD[: GOOD.index(b"# TYPE tftj_trainer_step")]
    ),
    # larger than any trainer's /metrics: not read into memory and not parsed
    "a 2 MB body": response(GOOD + b"# padding\n" * 200_000),
    # BadStatusLine
    "not HTTP at all": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    # RemoteDisconnected
    "connection closed without a reply": b"",
    # the exposition parser's ValueError: a line cut in the middle of its labels
    "half-written metrics": response(GOOD[: GOOD.index(b"worker", 60)]),
    # IncompleteRead from the chunked decoder
    "broken chunked encoding": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZ\r\n"
    ),
    # LineTooLong
    "a header line of 100 KiB": response(GOOD, headers=b"X-Big: " + b"a" * 100_000 + b"\r\n"),
    # HTTPException: got more than 100 headers
    "200 headers": response(GOOD, headers=b"".join(b"X-%d: 1\r\n" % i for i in range(200))),
    # HTTPError
    "an HTTP 500": response(b"boom", "500 Internal Server Error"),
    # binary noise where text is expected
    "binary garbage": response(bytes(range(256)) * 8),
    # a timeout: the server reads the request and never answers
    "no answer": None,
}


class _Handler(socketserver.BaseRequestHandler):
    reply: bytes | None
    drip: bool = False  # send the reply a byte at a time, 0.1 s apart

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return
            data += chunk
        if self.reply is None:
            try:  # hold the connection until the client gives up
                while sock.recv(4096):
                    pass
            except OSError:
                pass
            return
        if not self.drip:
            sock.sendall(self.reply)
            return
        stop = threading.Event()
        for byte in self.reply:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return  # the client gave up
            stop.wait(0.1)


@pytest.fixture
def serve() -> Iterator[Callable[..., int]]:
    """serve(reply) -> the loopback port of a real TCP server that answers every request so."""
    servers: list[socketserver.ThreadingTCPServer] = []

    def start(reply: bytes | None, drip: bool = False) -> int:
        handler = type("Handler", (_Handler,), {"reply": reply, "drip": drip})
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def kube() -> Kube:
    # An unconfigured client: these tests never reach an apiserver (workers are passed in).
    return Kube(client.ApiClient(), scrape_timeout=0.5)


def running_job(port: int) -> dict[str, Any]:
    """A Running job whose status already shows progress (epoch 1)."""
    job = make_job({"metrics": {"port": port}})
    step(job)
    progress = {"epoch": 1, "totalEpochs": 10, "step": 100, "loss": 0.5, "metrics": {}}
    step(job, [batch_job(0)], [pod(0, 0), pod(0, 1)], progress=progress)
    assert job["status"]["phase"] == "Running" and job["status"]["progress"]["epoch"] == 1
    return job


def chief(ip: str = "127.0.0.1") -> dict[str, Any]:
    worker = pod(0, 0)
    worker["status"]["podIP"] = ip
    return worker


def test_a_good_endpoint_is_read(serve: Callable[..., int]) -> None:
    port = serve(response(GOOD))
    assert kube().scrape("127.0.0.1", port) == {
        "epoch": 3,
        "totalEpochs": 10,
        "step": 300,
        "loss": 0.25,
        "metrics": {},
    }


@pytest.mark.parametrize("name", list(MISBEHAVIOURS))
def test_a_misbehaving_endpoint_leaves_progress_as_it_was(
    serve: Callable[..., int], name: str
) -> None:
    port = serve(MISBEHAVIOURS[name])
    edge = kube()
    assert edge.scrape("127.0.0.1", port) is None
    job = running_job(port)
    observed = edge.observe(
        job, scrape=True, children=False, workers=([batch_job(0)], [chief(), pod(0, 1)])
    )
    assert observed.progress is None
    plan = reconcile(observed)
    status = plan.status if plan.status is not None else job["status"]
    assert status["progress"] == job["status"]["progress"]


@pytest.mark.parametrize(
    ("ip", "port"),
    [("127.0.0.1", 70000), ("127.0.0.1", "x"), ("127.0.0.1", 0), ("not-an-ip", 9400)],
)
def test_an_impossible_address_is_not_scraped(ip: str, port: object) -> None:
    assert kube().scrape(ip, port) is None


def test_an_invalid_spec_is_observed_and_reported_not_a_crash() -> None:
    job = running_job(9400)
    job["spec"]["storage"] = "10Gi"  # past the webhook, e.g. with an older CRD schema
    job["spec"]["metrics"] = ["9400"]
    observed = kube().observe(
        job, scrape=True, children=False, workers=([batch_job(0)], [chief(), pod(0, 1)])
    )
    plan = reconcile(observed)
    assert plan.status is not None
    created = next(c for c in plan.status["conditions"] if c["type"] == "Created")
    assert created["reason"] == "InvalidSpec" and "spec.storage" in created["message"]


def test_an_event_the_apiserver_cannot_take_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # nothing listens: connection refused
    configuration.retries = 0
    edge = Kube(client.ApiClient(configuration))
    with caplog.at_level("WARNING", logger="tftj.operator"):
        edge.post_event(make_job(), "Warning", "InvalidSpec", "spec.x: bad")
    assert "could not post event InvalidSpec on mnist" in caplog.text


def test_a_good_answer_dripped_slower_than_the_timeout_is_not_waited_for(
    serve: Callable[..., int],
) -> None:
    # Every byte arrives within the socket timeout, the whole answer (~40 s) far outside it:
    # without a deadline on the whole scrape, one slow chief would hold a reconcile worker.
    port = serve(response(GOOD), drip=True)
    assert kube().scrape("127.0.0.1", port) is None
