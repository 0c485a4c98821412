"""The admission webhook served by forked processes (tftj.operator.webhookprocesses): several
processes on one port answer as one server, every review is counted by the operator, a
child's end is reported, and no child outlives the operator, however the operator ends."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from doorgen import review
from tftj.operator.certs import ensure_certs
from webhookclient import Client

HOST = Path(__file__).with_name("webhookhost.py")
GOOD_JOB: dict[str, Any] = {
    "apiVersion": "tftj.dev/v1alpha1",
    "kind": "TFTrainingJob",
    "metadata": {"name": "good"},
    "spec": {"data": {"format": "synthetic"}, "storage": {"size": "1Gi"}},
}
BAD_JOB = {**GOOD_JOB, "spec": {**GOOD_JOB["spec"], "training": {"learningRate": -1}}}


class Host:
    """webhookhost.py running; `said()` is its next JSON line."""

    def __init__(self, cert_dir: Path, processes: int, port: int = 0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HOST), str(cert_dir), str(processes), str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def said(self) -> dict[str, Any]:
        out: IO[str] | None = self.process.stdout
        assert out is not None
        line = out.readline()
        assert line, f"the host ended (exit code {self.process.wait(10)})"
        return dict(json.loads(line))

    def tell(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, ended and not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    host = Host(tmp_path / "certs", processes=2)
    yield host
    host.end()


def verdict(client: Client, obj: dict[str, Any], uid: str) -> dict[str, Any]:
    status, data = client.post(json.dumps(review(obj, uid=uid)).encode())
    assert status == 200, data
    response = json.loads(data)["response"]
    assert response["uid"] == uid
    return dict(response)


def test_processes_on_one_port_answer_every_review_and_the_operator_counts_each(
    host: Host, tmp_path: Path
) -> None:
    started = host.said()
    pids = started["pids"]
    assert len(pids) == 2 and all(alive(pid) for pid in pids)

    def one_client(index: int) -> list[bool]:
        client = Client(started["port"], tmp_path / "certs" / "ca.crt")
        try:
            return [
                verdict(client, GOOD_JOB if n % 2 else BAD_JOB, f"u-{index}-{n}")["allowed"]
                for n in range(20)
            ]
        finally:
            client.close()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = [a for each in pool.map(one_client, range(8)) for a in each]
    assert answers.count(True) == answers.count(False) == 80
    host.tell("stop")
    assert host.said() == {"stopped": 160}  # counted in the operator, none lost on the way
    assert host.process.wait(10) == 0
    assert gone_within(pids, 5)


@contextlib.contextmanager
def listening() -> Iterator[int]:
    """A port something listens on (without SO_REUSEPORT) during the block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_port_in_use_is_refused_before_any_process_is_forked(tmp_path: Path) -> None:
    with listening() as port:
        host = Host(tmp_path / "certs", processes=2, port=port)
        try:
            said = host.said()
            assert "Address already in use" in said["error"]
            assert host.process.wait(10) == 2
        finally:
            host.end()


def test_a_child_that_cannot_serve_fails_the_start_with_the_reason(tmp_path: Path) -> None:
    certs = ensure_certs(tmp_path / "certs", ["127.0.0.1"])
    certs.keyfile.write_text("not a key\n")  # the children load the pair; each fails
    host = Host(tmp_path / "certs", processes=2)
    try:
        said = host.said()  # the failure itself, not an "exit" line as from a running server
        assert "did not all serve" in said["error"], said
        assert host.process.wait(10) == 2
    finally:
        host.end()


def test_a_child_that_ends_is_reported_and_the_others_go_on_serving(
    host: Host, tmp_path: Path
) -> None:
    started = host.said()
    first, second = started["pids"]
    os.kill(first, signal.SIGKILL)
    assert host.said() == {"exit": -signal.SIGKILL}
    client = Client(started["port"], tmp_path / "certs" / "ca.crt")
    try:
        assert verdict(client, GOOD_JOB, "after")["allowed"] is True
    finally:
        client.close()
    assert alive(second)


def test_no_child_outlives_the_operator_killed_with_sigkill(host: Host) -> None:
    pids = host.said()["pids"]
    host.process.kill()
    host.process.wait(10)
    assert gone_within(pids, 5), "a webhook process outlived the operator"
