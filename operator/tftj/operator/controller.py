"""The controller: a work queue of TFTrainingJob keys and the workers that reconcile them.

One reconcile (reconcile_key) reads the job and what it owns (from the watch-fed cache where
that is safe, from the apiserver where a decision rests on an absence), computes the plan
(tftj.operator.reconcile) and applies it (tftj.operator.kube). The kopf wiring that feeds the
queue is tftj.operator.handlers; nothing here imports kopf.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from tftj.operator import metrics
from tftj.operator.cache import JOBS, PODS, Cache, Obj
from tftj.operator.kube import Conflict, Gone, Listing
from tftj.operator.reconcile import Observed, Plan, Timing, reconcile
from tftj.operator.transforms import lean_training_job
from tftj.operator.workqueue import WorkQueue

log = logging.getLogger("tftj.operator")

MAX_BACKOFF_SECONDS = 60.0
# Long-lived children (ConfigMap, Service, ...) seen in place are not read again for this long
# (unless the job's spec changes): it saves most of a reconcile's reads at scale, and drift
# by a third party is still repaired within this time.
CHILDREN_RECHECK_SECONDS = 60.0
# How long a worker Job's or pod's change may wait for its siblings' (see enqueue_soon).
CHILD_EVENT_DELAY = 1.0

Key = tuple[str, str]
Workers = tuple[list[Obj], list[Obj]]  # worker Jobs, worker pods


class Cluster(Protocol):
    """What the controller reads and writes: tftj.operator.kube.Kube against an apiserver;
    the unit tests drive the controller through an in-memory one."""

    def get_job(self, namespace: str, name: str) -> Obj: ...

    def list_workers(self, namespace: str, name: str) -> tuple[Listing, Listing]: ...

    def observe(
        self, job: Obj, *, scrape: bool, children: bool = True, workers: Workers | None = None
    ) -> Observed: ...

    def apply_plan(self, job: Obj, plan: Plan) -> Obj | None: ...


@dataclass
class Controller:
    kube: Cluster
    timing: Timing = field(default_factory=Timing)
    workers: int = 4
    progress: bool = True
    queue: WorkQueue[Key] | None = None  # created by start(), inside the running loop
    phases: metrics.PhaseTracker = field(default_factory=metrics.PhaseTracker)
    failures: dict[Key, int] = field(default_factory=dict)
    # key -> (uid, generation, when) the long-lived children were last seen in place
    children_seen: dict[Key, tuple[str, int | None, float]] = field(default_factory=dict)
    # key -> resourceVersion of our own last status write: its watch event is no news
    written: dict[Key, str | None] = field(default_factory=dict)
    # the latest body of every TFTrainingJob, worker Job and worker pod, from the watches
    cache: Cache = field(default_factory=Cache)
    # key -> when its worker Jobs and pods were last listed from the apiserver (monotonic)
    listed_at: dict[Key, float] = field(default_factory=dict)
    # jobs whose cached body proved stale (a status write conflicted): read from the apiserver
    reread: set[Key] = field(default_factory=set)
    # (kind, namespace, name) of a worker Job or pod -> its last signal (status.*_signal)
    signals: dict[tuple[str, str, str], tuple[Any, ...]] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    executor: concurrent.futures.ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        for kind in ("TFTrainingJob", JOBS, PODS):
            metrics.CACHE_OBJECTS.labels(kind).set_function(
                lambda kind=kind: self.cache.sizes()[kind]  # type: ignore[misc]
            )
        for index in self.index_sizes():
            metrics.INDEX_ENTRIES.labels(index).set_function(
                lambda index=index: self.index_sizes()[index]  # type: ignore[misc]
            )

    def index_sizes(self) -> dict[str, int]:
        """Entries of each per-job or per-child index (tftj_operator_index_entries): every one
        is dropped when its object goes, so they follow the live objects."""
        queue = self.queue
        return {
            "signals": len(self.signals),
            "children_seen": len(self.children_seen),
            "listed_at": len(self.listed_at),
            "written": len(self.written),
            "failures": len(self.failures),
            "reread": len(self.reread),
            "phases": len(self.phases),
            "queued": len(queue) if queue is not None else 0,
            "scheduled": queue.scheduled if queue is not None else 0,
        }

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """The queue and `workers` reconcile tasks, on the running event loop; every job
        already in the cache is queued (a new leader's watches ran while it was a follower)."""
        self.queue = WorkQueue[Key]()
        # Listed while this replica last led (if ever): events may have been lost since.
        self.listed_at.clear()
        metrics.IS_LEADER.set(1)  # this replica reconciles: standalone, or it holds the Lease
        for key in self.cache.job_keys():
            self.queue.add(key)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="reconcile"
        )
        self.tasks = [
            asyncio.create_task(self.worker(), name=f"reconcile-{i}") for i in range(self.workers)
        ]

    async def stop(self) -> None:
        metrics.IS_LEADER.set(0)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            # Let a reconcile in flight finish its writes before the operator exits (and
            # before a leader releases its lease): never two writers on one job.
            await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown, True)

    # ---------------------------------------------------------------- one reconcile

    def reconcile_key(self, key: Key) -> float | None:
        """Reconcile one TFTrainingJob; return when to look again (None: only on events)."""
        namespace, name = key
        started = time.perf_counter()
        try:
            job = None if key in self.reread else self.cache.job(key)
            if job is None:
                # Not seen yet (the watch is still listing) or our copy proved stale.
                job = self.kube.get_job(namespace, name)
            if job["metadata"].get("deletionTimestamp"):
                return None  # the garbage collector takes it from here
            phase = (job.get("status") or {}).get("phase")
            meta = job["metadata"]
            identity = (meta.get("uid", ""), meta.get("generation"))
            seen = self.children_seen.get(key)
            look = (
                seen is None
                or seen[:2] != identity
                or (time.monotonic() - seen[2] > CHILDREN_RECHECK_SECONDS)
            )
            # Never reconciled: it owns no workers yet (the status is written before any child
            # is created), so the cache's "none" needs no confirming.
            fresh = not job.get("status")
            if fresh:
                self.listed_at.setdefault(key, time.monotonic())
            workers = self._cached_workers(key)
            observed = self.kube.observe(
                job,
                scrape=self.progress and phase == "Running",
                children=look,
                workers=workers,
            )
            plan = reconcile(observed, self.timing)
            if not fresh and self._needs_listing(key, plan):
                jobs, pods = self._list_workers(key)
                observed = replace(observed, attempt_jobs=jobs, pods=pods)
                plan = reconcile(observed, self.timing)
            written = self.kube.apply_plan(job, plan)
            self.reread.discard(key)
            if written is not None:
                self.written[key] = (written.get("metadata") or {}).get("resourceVersion")
                self.cache.refresh_job(lean_training_job(written))
            if look and not plan.patches:
                # Everything wanted is in place: seen, or created just now (or found existing).
                self.children_seen[key] = (*identity, time.monotonic())
        finally:
            elapsed = time.perf_counter() - started
            metrics.RECONCILE_SECONDS.observe(elapsed)
        log.debug(
            "reconciled %s/%s in %.3fs: +%d ~%d -%d, phase %s",
            namespace,
            name,
            elapsed,
            len(plan.creates),
            len(plan.patches),
            len(plan.deletions),
            (plan.status or {}).get("phase", "unchanged"),
        )
        if plan.restarted:
            metrics.RESTARTS.inc()
        new_status = plan.status if plan.status is not None else job.get("status") or {}
        self.phases.set(key, None if plan.delete_job else new_status.get("phase"))
        return None if plan.delete_job else plan.requeue_after

    async def worker(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self.queue
        assert queue is not None, "start() creates the queue before the workers"
        while True:
            key = await queue.get()
            metrics.QUEUE_DEPTH.set(len(queue))
            delay: float | None
            try:
                delay = await loop.run_in_executor(self.executor, self.reconcile_key, key)
                metrics.RECONCILES.labels("ok").inc()
                self.failures.pop(key, None)
            except Gone:
                self.forget(key)
                delay = None
            except Conflict:
                # Someone (or our previous reconcile) changed the job: read it again.
                metrics.RECONCILES.labels("conflict").inc()
                self.reread.add(key)
                delay = 0.05
            except ApiException as exc:
                delay = self._backoff(key, "api", _api_error(exc))
            except (HTTPError, OSError) as exc:
                delay = self._backoff(key, "connection", str(exc))
            except Exception as exc:
                log.exception("reconcile of %s/%s failed", *key)
                delay = self._backoff(key, "internal", repr(exc))
            finally:
                queue.done(key)
            if delay is not None:
                queue.add_after(key, delay)

    def _needs_listing(self, key: Key, plan: Plan) -> bool:
        """Whether this plan must be decided on the apiserver's listing of the job's worker
        Jobs and pods rather than on the watch-fed cache (which may lag or hold a ghost)."""
        if any(c["kind"] == "Job" for c in plan.creates):
            # Creating a worker Job rests on absences (no current Job, no leftover pods):
            # decide that on the apiserver's word, never on a cache that may lag.
            return True
        last = self.listed_at.get(key)
        if last is None:
            return True  # first look since this replica started reconciling
        # Waiting for old workers to go rests on their presence: confirm it now and then, so
        # a cache that fell behind (a watch reconnecting) cannot hold the restart for long.
        return plan.waits_for_old_workers and time.monotonic() - last > CHILDREN_RECHECK_SECONDS

    def _list_workers(self, key: Key) -> Workers:
        (jobs, jobs_rv), (pods, pods_rv) = self.kube.list_workers(*key)
        self.cache.prune(JOBS, key, jobs, jobs_rv)
        self.cache.prune(PODS, key, pods, pods_rv)
        self.listed_at[key] = time.monotonic()
        return jobs, pods

    def _cached_workers(self, key: Key) -> Workers:
        return self.cache.owned(JOBS, key), self.cache.owned(PODS, key)

    def _backoff(self, key: Key, kind: str, reason: str) -> float:
        metrics.RECONCILES.labels("error").inc()
        metrics.ERRORS.labels(kind).inc()
        count = self.failures[key] = self.failures.get(key, 0) + 1
        delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2.0 ** min(count, 8))
        log.warning("reconcile of %s/%s failed (%s); retrying in %.1fs", *key, reason, delay)
        return delay

    def enqueue(self, namespace: str | None, name: str | None, urgent: bool = False) -> None:
        if self.queue is not None and namespace and name:
            self.queue.add((namespace, name), urgent)
            metrics.QUEUE_DEPTH.set(len(self.queue))

    def enqueue_soon(self, namespace: str | None, name: str | None) -> None:
        """Reconcile within CHILD_EVENT_DELAY: the events of one job's workers, which come in
        bursts (four pods scheduled, started, ready), then cost one status write, not one
        each: at scale those writes load the apiserver that is also starting the pods."""
        if self.queue is not None and namespace and name:
            self.queue.add_after((namespace, name), CHILD_EVENT_DELAY)

    def forget(self, key: Key) -> None:
        if self.queue is not None:
            self.queue.forget(key)
        self.phases.forget(key)
        self.failures.pop(key, None)
        self.children_seen.pop(key, None)
        self.listed_at.pop(key, None)
        self.written.pop(key, None)
        self.reread.discard(key)
        self.cache.forget_job(key)


def _api_error(exc: ApiException) -> str:
    """One line: the status code and the apiserver's message (not the headers and body)."""
    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except (ValueError, AttributeError):
        message = exc.reason
    return f"{exc.status} {message}"
