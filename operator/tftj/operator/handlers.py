"""kopf wiring: watch events feed a work queue; workers reconcile one job at a time.

Why not kopf's timers/daemons or create/update handlers: timers and daemons put a finalizer
on every TFTrainingJob (deletion would hang while the operator is down) and create/update
handlers are edge-triggered. Event handlers store nothing on the objects; together with the
queue's resyncs they give level-based reconciliation, as controller-runtime does:

- every TFTrainingJob event (including the initial listing after a restart) enqueues the job;
- every event of a worker Job or pod enqueues its parent: those come from tftj's own lean
  informers (tftj.operator.informer, server-side label-selected), not from kopf, whose
  per-event cost dominated the operator at thousands of pods;
- a reconcile asks to run again after `Plan.requeue_after` (progress scraping, deadlines,
  TTL, waiting for old pods to go);
- the admission webhook is not kopf's: tftj.operator.webhook serves it beside kopf;
- the queue and its workers are tftj.operator.controller;
- with leader election (tftj.operator.election) every replica watches and serves the webhook,
  and only the lease holder starts the workers.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kopf

from tftj.api import GROUP, PLURAL, VERSION
from tftj.operator.children import LABEL_JOB_NAME
from tftj.operator.controller import Controller
from tftj.operator.election import LeaderElector
from tftj.operator.informer import Informer
from tftj.operator.status import job_signal, pod_signal
from tftj.operator.transforms import lean_training_job

# (kind, event type, lean body): an informer's delivery once its kind is bound to it.
ChildDelivery = Callable[[str, str, dict[str, Any]], None]


def child_event(controller: Controller, loop: asyncio.AbstractEventLoop) -> ChildDelivery:
    """What an informer calls (on its own thread) for each worker Job or pod event: keep the
    lean body in the cache and wake the parent when something it decides on changed (see
    status.*_signal): pods emit many updates that cannot change a reconcile's outcome."""

    def deliver(kind: str, event: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        parent = (meta.get("labels") or {}).get(LABEL_JOB_NAME)
        owner = (namespace, parent or "")
        key = (kind, namespace, name)
        if event == "DELETED":
            controller.signals.pop(key, None)
            controller.cache.delete(kind, owner, name)
        else:
            # Always keep the latest body (the chief's IP, say), even when it wakes no one.
            controller.cache.put(kind, owner, body)
            signal = (job_signal if kind == "Job" else pod_signal)(body)
            if controller.signals.get(key) == signal:
                return
            controller.signals[key] = signal
        # The work queue belongs to the event loop.
        loop.call_soon_threadsafe(controller.enqueue_soon, namespace, parent)

    return deliver


def build_registry(
    controller: Controller,
    elector: LeaderElector | None = None,
    informers: Sequence[Informer] = (),
) -> kopf.OperatorRegistry:
    """All handlers on a fresh registry (nothing registered at import time). With an `elector`
    the controller reconciles only while this replica is the leader. The `informers` (worker
    Jobs and pods) start with the operator, on every replica, and stop with it."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        # In-cluster ServiceAccount, else $KUBECONFIG (set by `tftj operator --kubeconfig`).
        return kopf.login_via_client(**kwargs)

    election: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry)
    async def start(**_: Any) -> None:
        deliver = child_event(controller, asyncio.get_running_loop())
        for informer in informers:
            informer.start(functools.partial(deliver, informer.resource.kind))
        if elector is None:
            controller.start()
        else:
            # The watches below run on every replica (a warm cache for a quick takeover); the
            # reconcile workers start only when this replica holds the lease.
            election.append(asyncio.create_task(elector.run(), name="leader-election"))

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        for task in election:
            task.cancel()
        await asyncio.gather(*election, return_exceptions=True)
        await controller.stop()
        if elector is not None:
            await elector.release()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, i.stop) for i in informers))

    # The event handlers are coroutines, run on the event loop: the work queue is an asyncio
    # one (not thread-safe), and kopf would run plain functions in its small thread pool, where
    # hundreds of pod events queue in front of the admission webhook's validations.
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def job_event(
        type: str,
        namespace: str | None,
        name: str,
        meta: Mapping[str, Any],
        status: Mapping[str, Any],
        body: Mapping[str, Any],
        **_: Any,
    ) -> None:
        key = (namespace or "", name)
        if type == "DELETED":
            controller.forget(key)
            return
        controller.cache.put_job(lean_training_job(body))
        if meta.get("resourceVersion") != controller.written.get(key):
            controller.enqueue(namespace, name, urgent=not status)

    return registry


def configure_settings(
    settings: kopf.OperatorSettings,
    *,
    watch_timeout_seconds: int = 300,
    api_timeout_seconds: float = 30,
) -> None:
    # Our own Events are written by the reconcile; kopf's per-handler log events would only
    # add noise (and need no extra permission when off).
    settings.posting.enabled = False
    # A watch the apiserver does not end by itself within server_timeout is dead (e.g. a
    # network partition that drops packets silently): the client gives up on it a little
    # later and reconnects, instead of waiting on a TCP connection that never answers.
    settings.watching.server_timeout = watch_timeout_seconds
    settings.watching.client_timeout = watch_timeout_seconds * 1.1
    settings.watching.connect_timeout = api_timeout_seconds
    settings.networking.request_timeout = api_timeout_seconds
    settings.networking.connect_timeout = api_timeout_seconds
