"""The admission webhook's HTTPS server: one route, answered by tftj.operator.admission.answer.

Ours rather than kopf's WebhookServer, because the door must hold against any bytes: kopf's
server answers a body without `request`, or with the wrong types, or nested too deeply, with
HTTP 500 (a KeyError or RecursionError inside it); here a malformed review gets 400 with the
reason and a well-formed one allowed/denied with a message. It also needs none of kopf's
resource discovery, so it answers as soon as the operator starts.

TLS 1.2 or newer only. The serving certificate is re-read when its files change (a renewed,
mounted Secret): new connections get the new one, without a restart or a dropped request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable

from tftj.operator import metrics
from tftj.operator.admission import answer
from tftj.operator.certs import CertPaths
from tftj.operator.httpserver import HttpServer, Response, Route, text

log = logging.getLogger("tftj.operator")

PATH = "/validate-tftrainingjob"
# The readiness probe's path: answered by the same TLS server, so "ready" means the webhook
# accepts connections (every replica, leader or not).
READY_PATH = "/readyz"
# The apiserver sends object and oldObject, each at most etcd's ~1.5 MiB: room for both.
MAX_BODY_BYTES = 8 * 1024 * 1024
CERT_CHECK_SECONDS = 30.0
JSON = "application/json"
# A review of ordinary size is validated in a fraction of a millisecond: right on the event
# loop, which with 50 reviews in flight beats a hop to a thread per review (each hop then
# waits for the GIL behind the others). A bigger body (up to MAX_BODY_BYTES) goes to a thread,
# so no single review can hold up the loop that also feeds the controller.
INLINE_BODY_BYTES = 64 * 1024


def tls_context(certs: CertPaths) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certs.certfile, certs.keyfile)
    return context


def _stamp(certs: CertPaths) -> tuple[tuple[int, int], ...]:
    """What changes when a certificate file is replaced (a Secret's symlink swap included)."""
    return tuple(
        (stat.st_mtime_ns, stat.st_size) for stat in (certs.certfile.stat(), certs.keyfile.stat())
    )


#: Counts one review: its operation (CREATE, UPDATE, OTHER, MALFORMED), result (allowed,
#: denied, error, malformed) and seconds taken.
Observe = Callable[[str, str, float], None]


def record(operation: str, result: str, seconds: float) -> None:
    """Observe a review in this process's Prometheus metrics."""
    metrics.ADMISSION_SECONDS.labels(operation).observe(seconds)
    metrics.ADMISSIONS.labels(operation, result).inc()


def _route(observe: Observe) -> Route:
    def route(method: str, target: str, body: bytes) -> Response:
        path = target.partition("?")[0]
        if path == READY_PATH:
            return text(200, "ok") if method in ("GET", "HEAD") else text(405, "GET only")
        if path != PATH:
            return text(404, f"no such path; reviews go to POST {PATH}")
        if method != "POST":
            return text(405, "POST an AdmissionReview")
        started = time.perf_counter()
        result = answer(body)
        observe(
            result.operation or "MALFORMED",
            result.result or "malformed",
            time.perf_counter() - started,
        )
        if result.body is None:
            return text(result.status, result.reason)
        return Response(result.status, json.dumps(result.body).encode(), JSON)

    return route


class WebhookServer:
    """`async with WebhookServer(...)` serves until the block ends, on `addr`:`port` (with
    `reuse_port`, beside other processes on the same port: tftj.operator.webhookprocesses)."""

    def __init__(
        self,
        certs: CertPaths,
        *,
        addr: str,
        port: int,
        reuse_port: bool = False,
        observe: Observe = record,
        cert_check_seconds: float = CERT_CHECK_SECONDS,
    ) -> None:
        self.certs = certs
        self.addr = addr
        self.port = port
        self.reuse_port = reuse_port
        self.cert_check_seconds = cert_check_seconds
        self.context = tls_context(certs)
        self._stamp = _stamp(certs)
        self._http = HttpServer(
            _route(observe),
            ssl_context=self.context,
            max_body_bytes=MAX_BODY_BYTES,
            inline_body_bytes=INLINE_BODY_BYTES,
        )
        self._watcher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WebhookServer:
        self.port = await self._http.start(
            host=self.addr, port=self.port, reuse_port=self.reuse_port
        )
        self._watcher = asyncio.create_task(self._watch_certs(), name="webhook-certs")
        log.info("admission webhook on https://%s:%d%s", self.addr, self.port, PATH)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._http.close()

    def reload_certs(self) -> bool:
        """Load the certificate files again if they changed; whether they were."""
        stamp = _stamp(self.certs)
        if stamp == self._stamp:
            return False
        self.context.load_cert_chain(self.certs.certfile, self.certs.keyfile)
        self._stamp = stamp
        log.info("admission webhook: serving the renewed certificate %s", self.certs.certfile)
        return True

    async def _watch_certs(self) -> None:
        while True:
            await asyncio.sleep(self.cert_check_seconds)
            try:
                self.reload_certs()
            except (OSError, ssl.SSLError) as exc:
                # Mid-rotation (key and certificate not yet both replaced): keep serving the
                # old pair and look again at the next tick.
                log.warning("admission webhook: certificate not reloaded yet: %s", exc)
