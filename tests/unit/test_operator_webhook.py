"""The admission webhook's real HTTPS server on loopback (tftj.operator.webhook): whatever
arrives, never a 5xx; the same verdicts as `tftj validate`; TLS 1.2+; renewed certificates.

Sized for CI (a couple of thousand requests); bench/webhook_fuzz.py runs 10,000 of each and
reports the server's memory.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from doorgen import manifests, review, review_bodies
from loopthread import LoopThread
from tftj.api.validate import validate
from tftj.operator.certs import CertPaths, ensure_certs
from tftj.operator.webhook import INLINE_BODY_BYTES, MAX_BODY_BYTES, READY_PATH, WebhookServer
from webhookclient import Client

TFTJ = Path(sys.executable).with_name("tftj")
GOOD_JOB = {
    "apiVersion": "tftj.dev/v1alpha1",
    "kind": "TFTrainingJob",
    "metadata": {"name": "good"},
    "spec": {"data": {"format": "synthetic"}, "storage": {"size": "1Gi"}},
}


class Served(LoopThread):
    """A WebhookServer running on its own event loop in a thread, as in the operator."""

    def __init__(self, certs: CertPaths, cert_check_seconds: float = 30.0) -> None:
        self.server = WebhookServer(
            certs, addr="127.0.0.1", port=0, cert_check_seconds=cert_check_seconds
        )
        super().__init__(self.server.__aenter__, lambda: self.server.__aexit__(None, None, None))
        self.port = self.server.port


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return ensure_certs(tmp_path_factory.mktemp("certs"), ["127.0.0.1"])


@pytest.fixture(scope="module")
def served(certs: CertPaths) -> Iterator[Served]:
    served = Served(certs)
    yield served
    served.stop()


@pytest.fixture
def client(served: Served, certs: CertPaths) -> Iterator[Client]:
    client = Client(served.port, certs.cafile)
    yield client
    client.close()


def verdict(client: Client, obj: Any, uid: str = "u-1") -> dict[str, Any]:
    status, data = client.post(json.dumps(review(obj, uid=uid)).encode())
    assert status == 200, data
    answer = json.loads(data)
    assert answer["response"]["uid"] == uid
    return dict(answer["response"])


def test_a_good_review_is_admitted_and_a_bad_one_denied_naming_the_field(client: Client) -> None:
    assert verdict(client, GOOD_JOB)["allowed"] is True
    bad = {**GOOD_JOB, "spec": {**GOOD_JOB["spec"], "training": {"learningRate": -1}}}
    denied = verdict(client, bad)
    assert denied["allowed"] is False and denied["status"]["code"] == 422
    assert denied["status"]["message"].startswith("spec.training.learningRate: must be > 0")


def test_a_big_review_is_answered_as_a_small_one(client: Client) -> None:
    """Beyond INLINE_BODY_BYTES the review is validated on a thread, not on the loop: same
    verdicts."""
    notes = {"notes": "x" * (INLINE_BODY_BYTES + 1)}
    big = {**GOOD_JOB, "metadata": {"name": "good", "annotations": notes}}
    assert len(json.dumps(review(big))) > INLINE_BODY_BYTES
    assert verdict(client, big)["allowed"] is True
    bad = {**big, "spec": {**GOOD_JOB["spec"], "training": {"learningRate": -1}}}
    assert verdict(client, bad)["status"]["message"].startswith("spec.training.learningRate")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not JSON"),
        (b"<xml/>", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"kind": "AdmissionReview"}', "must be an AdmissionReview"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request"),
        (json.dumps({**review(GOOD_JOB), "request": []}).encode(), "request: must be a mapping"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    ],
)
def test_a_malformed_review_gets_400_with_the_reason(
    client: Client, body: bytes, reason: str
) -> None:
    status, data = client.post(body)
    assert status == 400 and reason in data.decode()


def test_a_body_beyond_the_limit_gets_413_and_the_server_goes_on(client: Client) -> None:
    status, _ = client.post(b'{"a": "' + b"x" * MAX_BODY_BYTES + b'"}')
    assert status == 413
    assert verdict(client, GOOD_JOB)["allowed"] is True


def test_random_bodies_never_get_a_5xx_and_a_good_review_passes_afterwards(
    client: Client,
) -> None:
    seen: dict[tuple[str, int], int] = {}
    for category, body in review_bodies(seed=12, count=1500):
        status, data = client.post(body)
        seen[(category, status)] = seen.get((category, status), 0) + 1
        assert status < 500, (category, body[:200], data[:200])
        if status == 400:
            assert data.strip(), "a 400 must say why"
        elif status == 200:
            answer = json.loads(data)["response"]
            assert isinstance(answer["allowed"], bool)
            assert answer["allowed"] or answer["status"]["message"]
            assert "internal error" not in answer.get("status", {}).get("message", ""), answer
    # Every kind of input was tried, and both doors' outcomes occurred.
    assert {c for c, _ in seen} >= {"manifest", "not JSON", "wrong shape", "deeply nested"}
    assert {s for _, s in seen} == {200, 400}
    assert verdict(client, GOOD_JOB)["allowed"] is True


def test_tftj_validate_and_the_webhook_give_the_same_verdicts(
    client: Client, tmp_path: Path
) -> None:
    jobs = list(manifests(seed=7, count=1000))
    path = tmp_path / "random.yaml"
    path.write_text(yaml.safe_dump_all(jobs, sort_keys=False))
    result = subprocess.run(
        [str(TFTJ), "validate", "--quiet", str(path)], capture_output=True, text=True, timeout=300
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert "internal error" not in result.stdout
    by_doc: dict[int, list[str]] = {}
    for line in result.stdout.splitlines():
        match = re.match(rf"{re.escape(str(path))}:(\d+): (.*?)(?: \(line \d+\))?$", line)
        assert match, line
        by_doc.setdefault(int(match[1]), []).append(match[2])
    allowed = 0
    for index, job in enumerate(jobs):
        errors = by_doc.get(index, [])
        answer = verdict(client, job, uid=f"u{index}")
        allowed += answer["allowed"]
        assert answer["allowed"] == (not errors), (index, job, errors, answer)
        if errors:
            assert answer["status"]["message"] == "; ".join(errors), index
        # every error names its field
        assert all(problem.path for problem in validate(job).errors), job
    assert 0 < allowed < len(jobs)  # both verdicts occurred


def tls_client(certs: CertPaths, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.cafile))
    context.minimum_version = context.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer what it can
    return context


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")  # that is the point
@pytest.mark.parametrize(
    ("version", "served_as"),
    [
        (ssl.TLSVersion.TLSv1, None),
        (ssl.TLSVersion.TLSv1_1, None),
        (ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
        (ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_tls_1_2_or_newer_only(
    served: Served, certs: CertPaths, version: ssl.TLSVersion, served_as: str | None
) -> None:
    client = Client(served.port, certs.cafile, tls_client(certs, version))
    try:
        if served_as is None:
            with pytest.raises(ssl.SSLError):
                client.post(json.dumps(review(GOOD_JOB)).encode())
            return
        assert verdict(client, GOOD_JOB)["allowed"] is True
        assert client.conn is not None and client.conn.sock is not None
        assert client.conn.sock.version() == served_as
    finally:
        client.close()


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    old = ensure_certs(tmp_path / "certs", ["127.0.0.1"])
    served = Served(old, cert_check_seconds=0.05)
    try:
        old_ca = tmp_path / "old-ca.crt"
        old_ca.write_bytes(old.cafile.read_bytes())
        assert verdict(Client(served.port, old_ca), GOOD_JOB)["allowed"]
        # A new CA and serving certificate, written into place as a renewed Secret would be.
        for path in (old.cafile, old.certfile, old.keyfile):
            path.unlink()
        new = ensure_certs(tmp_path / "certs", ["127.0.0.1"])
        assert new.cafile.read_bytes() != old_ca.read_bytes()
        deadline = time.monotonic() + 20
        while True:
            try:
                assert verdict(Client(served.port, new.cafile), GOOD_JOB)["allowed"]
                break
            except ssl.SSLCertVerificationError:
                assert time.monotonic() < deadline, "the renewed certificate was never served"
                time.sleep(0.05)
        with pytest.raises(ssl.SSLCertVerificationError):  # the old one is gone
            Client(served.port, old_ca).post(json.dumps(review(GOOD_JOB)).encode())
    finally:
        served.stop()


def test_readiness_is_answered_by_the_webhook_server_itself(
    served: Served, certs: CertPaths
) -> None:
    # The chart's readinessProbe: HTTPS GET on the webhook port, so a replica is Ready exactly
    # when its webhook accepts TLS connections (leader or follower alike).
    import urllib.request

    context = ssl.create_default_context(cafile=str(certs.cafile))
    with urllib.request.urlopen(
        f"https://127.0.0.1:{served.port}{READY_PATH}", context=context, timeout=10
    ) as response:
        assert response.status == 200
