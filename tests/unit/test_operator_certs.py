"""tftj.operator.certs: the webhook's generated CA and serving certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

from tftj.operator.certs import ensure_certs


def test_webhook_certificates_verify_for_their_host(tmp_path: Path) -> None:
    paths = ensure_certs(tmp_path, ["127.0.0.1"])
    ctx = ssl.create_default_context(cafile=str(paths.cafile))
    ctx.load_cert_chain(paths.certfile, paths.keyfile)  # the pair matches
    first = paths.certfile.read_bytes()
    assert ensure_certs(tmp_path, ["127.0.0.1"]).certfile.read_bytes() == first  # reused
    other = ensure_certs(tmp_path, ["tftj-webhook.tftj-system.svc"])
    assert other.certfile.read_bytes() != first  # a new host needs a new certificate
