"""A keep-alive HTTPS client of the admission webhook, for its tests and bench/webhook_fuzz.py."""

from __future__ import annotations

import http.client
import ssl
from pathlib import Path

from tftj.operator.webhook import PATH


class Client:
    """One keep-alive HTTPS connection, reopened when the server closes it."""

    def __init__(self, port: int, cafile: Path, context: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.context = context or ssl.create_default_context(cafile=str(cafile))
        self.conn: http.client.HTTPSConnection | None = None

    def post(self, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(
                    "127.0.0.1", self.port, context=self.context, timeout=30
                )
            try:
                self.conn.request("POST", PATH, body, {"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()  # the server closed a kept-alive connection: once more, afresh
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
