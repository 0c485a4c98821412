"""A lean informer: the worker Jobs and pods the operator owns, listed and then watched in a
thread of their own, every object cut down to its lean form (tftj.operator.transforms) as it
is parsed, before anything else holds it.

Why not kopf's watches for these (kopf still watches TFTrainingJobs):
- cost: a pod goes through ~5 updates on its way to Running, so 1,000 jobs x 4 workers are
  ~20,000 events in a burst, and kopf's per-event machinery (body wrappers, handler
  matching, its lifecycle bookkeeping) was the largest cost of the operator left after the
  lean caches (docs/operator-scale.md);
- deletions: after an expired resourceVersion (HTTP 410) a watch has to list again, and
  kopf tells its handlers nothing of what was deleted in the gap. Here a re-list reports those
  objects DELETED (client-go's Replace), so the controller's cache never keeps a ghost.

Each Informer is one resource in one namespace (or all of them): list in pages, then watch
from the list's resourceVersion with bookmarks; on 410 list again; on a broken connection
watch again from the last resourceVersion seen, after a short backoff.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from tftj.operator.children import LABEL_ATTEMPT, LABEL_JOB_NAME, LABEL_ROLE
from tftj.operator.transforms import lean_job, lean_pod

log = logging.getLogger("tftj.operator")

Obj = dict[str, Any]
# (event type, lean object), called on the informer's thread: ADDED, MODIFIED or DELETED.
Deliver = Callable[[str, Obj], None]

PAGE = 500  # items per page of a listing: 4,000 pods are never one response
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0)  # between failed attempts, then the last again
GONE = 410


class Expired(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


@dataclass(frozen=True)
class Resource:
    """One kind the operator owns, as the informer lists and watches it."""

    kind: str  # Job or Pod (the controller's cache kinds)
    selector: str  # server-side label selector: only the operator's own objects
    lean: Callable[[Obj], Obj]
    # (api, namespace or None) -> the typed list call (namespaced or across all namespaces)
    lister: Callable[[client.ApiClient, str | None], Callable[..., Any]]


def _pods(api: client.ApiClient, namespace: str | None) -> Callable[..., Any]:
    core = client.CoreV1Api(api)
    if namespace is None:
        return core.list_pod_for_all_namespaces
    return lambda **kw: core.list_namespaced_pod(namespace, **kw)


def _jobs(api: client.ApiClient, namespace: str | None) -> Callable[..., Any]:
    batch = client.BatchV1Api(api)
    if namespace is None:
        return batch.list_job_for_all_namespaces
    return lambda **kw: batch.list_namespaced_job(namespace, **kw)


WORKER_JOBS = Resource("Job", f"{LABEL_JOB_NAME},{LABEL_ATTEMPT}", lean_job, _jobs)
WORKER_PODS = Resource("Pod", f"{LABEL_JOB_NAME},{LABEL_ROLE}=worker", lean_pod, _pods)


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _stub(key: tuple[str, str], labels: dict[str, str]) -> Obj:
    """What is known of an object that vanished unseen: its identity and tftj's labels."""
    return {"metadata": {"namespace": key[0], "name": key[1], "labels": labels}}


class Informer:
    def __init__(
        self,
        api: client.ApiClient,
        resource: Resource,
        namespace: str | None,
        *,
        watch_timeout_seconds: int = 300,
        connect_timeout: float = 30.0,
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.watch_timeout_seconds = watch_timeout_seconds
        self.connect_timeout = connect_timeout
        self._list = resource.lister(api, namespace)
        # (namespace, name) -> tftj's labels of every object delivered and not deleted since:
        # what a re-list compares against to report the deletions it did not see.
        self.known: dict[tuple[str, str], dict[str, str]] = {}
        self.synced = threading.Event()  # the first listing was delivered
        self.relists = 0
        self._deliver: Deliver | None = None
        self._stopped = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return f"{self.resource.kind.lower()}s@{self.namespace or '*'}"

    # ------------------------------------------------------------ lifecycle

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._thread = threading.Thread(target=self.run, name=f"informer-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        response = self._response
        if response is not None:
            # Unblock a read waiting on the socket (close() alone would wait for it).
            sock = getattr(getattr(response, "connection", None), "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def run(self) -> None:
        version: str | None = None
        failures = 0
        while not self._stopped.is_set():
            try:
                if version is None:
                    version = self.relist()
                version = self.watch(version)
                failures = 0
            except Expired:
                log.info("informer %s: resourceVersion expired; listing again", self.name)
                version = None
            except (ApiException, HTTPError, OSError, ValueError) as exc:
                if self._stopped.is_set():
                    return
                delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
                failures += 1
                log.warning("informer %s: %s; again in %.1fs", self.name, _describe(exc), delay)
                self._stopped.wait(delay)

    # ------------------------------------------------------------ list and watch

    def relist(self) -> str | None:
        """List everything (paged), deliver it, and deliver DELETED for what was known but is
        no longer there; the listing's resourceVersion."""
        items: list[Obj] = []
        version: str | None = None
        token: str | None = None
        while True:
            page = self._read(
                self._list(
                    label_selector=self.resource.selector,
                    limit=PAGE,
                    _continue=token,
                    _preload_content=False,
                    _request_timeout=(self.connect_timeout, self.watch_timeout_seconds),
                )
            )
            items += [self.resource.lean(item) for item in page.get("items") or []]
            meta = page.get("metadata") or {}
            version = version or meta.get("resourceVersion")
            token = meta.get("continue") or None
            if token is None:
                break
        present = {_key(item) for item in items}
        for key in [k for k in self.known if k not in present]:
            self._emit("DELETED", _stub(key, self.known[key]))
        for item in items:
            self._emit("ADDED", item)
        self.relists += 1
        self.synced.set()
        return version

    def watch(self, version: str | None) -> str | None:
        """Deliver events from `version` on until the apiserver ends the watch (its timeout);
        the last resourceVersion seen."""
        try:
            response = self._list(
                label_selector=self.resource.selector,
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=self.watch_timeout_seconds,
                _preload_content=False,
                # A watch silent for longer than its own timeout is dead (a partition that
                # drops packets): give up on the read and watch again.
                _request_timeout=(self.connect_timeout, self.watch_timeout_seconds * 1.1),
            )
        except ApiException as exc:
            if exc.status == GONE:
                raise Expired() from exc
            raise
        self._response = response
        try:
            if response.status == GONE:
                raise Expired()
            if not 200 <= response.status < 300:
                raise ApiException(status=response.status, reason=response.reason)
            for line in _lines(response):
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == GONE:
                        raise Expired()
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._emit(kind, self.resource.lean(obj))
                if self._stopped.is_set():
                    break
        finally:
            self._response = None
            response.release_conn()
        return version

    # ------------------------------------------------------------ helpers

    def _emit(self, kind: str, obj: Obj) -> None:
        key = _key(obj)
        if kind == "DELETED":
            self.known.pop(key, None)
        else:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            self.known[key] = {k: v for k, v in labels.items() if k == LABEL_JOB_NAME}
        assert self._deliver is not None, "start() sets the delivery"
        try:
            self._deliver(kind, obj)
        except Exception:
            # A bug in a handler must not end the watch (it would stop every update).
            log.exception("informer %s: handling %s %s/%s failed", self.name, kind, *key)

    @staticmethod
    def _read(response: Any) -> Obj:
        body: Obj = json.loads(response.data)
        return body


def _lines(response: Any) -> Iterator[bytes]:
    """The non-empty lines of a streamed response (a watch sends one JSON event per line)."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from (line for line in lines if line.strip())
    if pending.strip():
        yield pending


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def worker_informers(
    api: client.ApiClient,
    namespaces: Sequence[str],
    *,
    watch_timeout_seconds: int,
    connect_timeout: float,
) -> list[Informer]:
    """Informers of worker Jobs and pods: across all namespaces, or one per namespace given."""
    scopes: list[str | None] = list(namespaces) or [None]
    return [
        Informer(
            api,
            resource,
            namespace,
            watch_timeout_seconds=watch_timeout_seconds,
            connect_timeout=connect_timeout,
        )
        for resource in (WORKER_JOBS, WORKER_PODS)
        for namespace in scopes
    ]
