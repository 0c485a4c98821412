"""Controller.reconcile_key and the worker loop (tftj.operator.controller) over an in-memory
cluster: the decisions that must not rest on the watch-fed cache.

The apiserver itself is exercised by tests/cluster; here `MemoryCluster` implements the
controller's `Cluster` interface with the apiserver's semantics the controller relies on
(resourceVersions, the status write's precondition, AlreadyExists, label-selected lists).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from test_operator_reconcile import make_job, pod
from tftj.operator.cache import JOBS, PODS
from tftj.operator.children import LABEL_JOB_NAME
from tftj.operator.controller import Controller, Key, Workers
from tftj.operator.kube import Conflict, Gone, Listing
from tftj.operator.reconcile import Observed, Plan

Obj = dict[str, Any]
KEY: Key = ("ml", "mnist")


class MemoryCluster:
    """One namespace of TFTrainingJobs and what they own, kept as an apiserver keeps them."""

    def __init__(self) -> None:
        self.version = 0
        self.jobs: dict[str, Obj] = {}
        self.objects: dict[tuple[str, str], Obj] = {}  # (kind, name) -> children, workers, pods
        self.created: list[tuple[str, str]] = []
        self.conflicts = 0
        self.listings = 0
        self.events: list[str] = []

    def _stamp(self, obj: Obj) -> Obj:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        return obj

    def put(self, obj: Obj) -> Obj:
        kind = obj.get("kind", "Pod")
        if kind == "TFTrainingJob":
            self.jobs[obj["metadata"]["name"]] = self._stamp(copy.deepcopy(obj))
            return copy.deepcopy(self.jobs[obj["metadata"]["name"]])
        self.objects[(kind, obj["metadata"]["name"])] = self._stamp(copy.deepcopy(obj))
        return copy.deepcopy(self.objects[(kind, obj["metadata"]["name"])])

    def _owned(self, kind: str, name: str) -> list[Obj]:
        return [
            copy.deepcopy(o)
            for (k, _), o in sorted(self.objects.items())
            if k == kind and (o["metadata"].get("labels") or {}).get(LABEL_JOB_NAME) == name
        ]

    # ------------------------------------------------------------ the Cluster interface

    def get_job(self, namespace: str, name: str) -> Obj:
        if name not in self.jobs:
            raise Gone(f"{namespace}/{name}")
        return copy.deepcopy(self.jobs[name])

    def list_workers(self, namespace: str, name: str) -> tuple[Listing, Listing]:
        self.listings += 1
        at = str(self.version)
        return (self._owned("Job", name), at), (self._owned("Pod", name), at)

    def observe(
        self, job: Obj, *, scrape: bool, children: bool = True, workers: Workers | None = None
    ) -> Observed:
        name = job["metadata"]["name"]
        jobs, pods = workers if workers is not None else (self._owned("Job", name), [])
        found = {
            key: copy.deepcopy(o)
            for key, o in self.objects.items()
            if key[0] not in ("Job", "Pod")
            and (o["metadata"].get("labels") or {}).get(LABEL_JOB_NAME) == name
        }
        return Observed(
            job=job,
            children=found if children else None,
            attempt_jobs=jobs,
            pods=pods,
            now=datetime.now(UTC),
        )

    def apply_plan(self, job: Obj, plan: Plan) -> Obj | None:
        name = job["metadata"]["name"]
        written = None
        if plan.status is not None:
            if name not in self.jobs:
                raise Gone(name)
            stored = self.jobs[name]
            if stored["metadata"]["resourceVersion"] != job["metadata"]["resourceVersion"]:
                self.conflicts += 1
                raise Conflict(name)
            written = self.put({**stored, "status": plan.status})
        for deletion in plan.deletions:
            self.objects.pop(("Job", deletion.name), None)
        for obj in plan.creates:
            key = (obj["kind"], obj["metadata"]["name"])
            if key not in self.objects:  # else AlreadyExists, ignored as Kube does
                self.created.append(key)
                self.put(obj)
        self.events += [e.reason for e in plan.events]
        return written


def setup(spec: Obj | None = None) -> tuple[MemoryCluster, Controller]:
    cluster = MemoryCluster()
    job = make_job(spec)
    job["metadata"].pop("resourceVersion")
    cluster.put(job)
    return cluster, Controller(kube=cluster)


def watch_saw(controller: Controller, cluster: MemoryCluster, *, workers: bool) -> None:
    """Feed the controller's cache as its watches would: the job, and optionally its workers."""
    controller.cache.put_job(cluster.get_job(*KEY))
    if workers:
        for (kind, _), obj in cluster.objects.items():
            if kind in (JOBS, PODS):
                controller.cache.put(kind, KEY, copy.deepcopy(obj))


def children_just_seen(controller: Controller, cluster: MemoryCluster) -> None:
    """As after a reconcile moments ago: the next one trusts the cache for workers."""
    meta = cluster.get_job(*KEY)["metadata"]
    controller.children_seen[KEY] = (meta.get("uid", ""), meta.get("generation"), time.monotonic())


def worker_pod(attempt: int, index: int) -> Obj:
    obj = pod(attempt, index)
    obj["kind"] = "Pod"
    return obj


def test_first_reconcile_creates_children_then_the_attempt_job() -> None:
    cluster, controller = setup()
    controller.reconcile_key(KEY)  # no status yet: nothing to list, everything is created
    assert [k for k in cluster.created if k[0] != "Job"] != []
    assert cluster.created[-1] == ("Job", "mnist-a0")
    assert cluster.jobs["mnist"]["status"]["phase"] == "Pending"
    assert cluster.events.count("AttemptCreated") == 1


def test_a_worker_job_is_never_created_from_a_lagging_cache() -> None:
    cluster, controller = setup()
    controller.reconcile_key(KEY)
    # The watch has not delivered the attempt Job yet; the children were seen just now.
    watch_saw(controller, cluster, workers=False)
    children_just_seen(controller, cluster)
    listings = cluster.listings
    controller.reconcile_key(KEY)
    assert cluster.listings == listings + 1  # the apiserver was asked before creating
    assert [k for k in cluster.created if k[0] == "Job"] == [("Job", "mnist-a0")]


def restart_due() -> tuple[MemoryCluster, Controller]:
    """A job whose attempt 0 failed: the restart is decided (status.attempt 1), the attempt
    0 Job is gone, attempt 1 is not created yet."""
    cluster, controller = setup()
    controller.reconcile_key(KEY)
    stored = cluster.jobs["mnist"]
    cluster.put({**stored, "status": {**stored["status"], "attempt": 1, "restarts": 1}})
    cluster.objects.pop(("Job", "mnist-a0"))
    return cluster, controller


def test_a_restart_waits_for_old_pods_the_cache_lost() -> None:
    # attempt 0 failed and a restart was decided: attempt 1 is due, but two pods of
    # attempt 0 still run in the cluster, and the controller's cache lost them.
    cluster, controller = restart_due()
    for index in (0, 1):
        cluster.put(worker_pod(0, index))
    watch_saw(controller, cluster, workers=False)
    children_just_seen(controller, cluster)
    controller.reconcile_key(KEY)
    assert ("Job", "mnist-a1") not in cluster.created
    status = cluster.jobs["mnist"]["status"]
    assert next(c for c in status["conditions"] if c["type"] == status["phase"])["reason"] == (
        "StoppingPreviousAttempt"
    )
    # The old pods go: attempt 1 starts.
    for index in (0, 1):
        cluster.objects.pop(("Pod", f"mnist-a0-{index}-x"))
    watch_saw(controller, cluster, workers=False)
    controller.reconcile_key(KEY)
    assert ("Job", "mnist-a1") in cluster.created


def test_a_running_job_is_not_listed_again_at_each_look() -> None:
    """Once listed, a job's workers come from the cache, also when its long-lived children
    are re-read: at 1,000 jobs a listing per look was ~2,000 apiserver lists a minute."""
    cluster, controller = setup()
    controller.reconcile_key(KEY)  # creates everything: no listing (it owned nothing)
    assert cluster.listings == 0
    for index in (0, 1):
        cluster.put(worker_pod(0, index))
    watch_saw(controller, cluster, workers=True)
    controller.reconcile_key(KEY)
    listings = cluster.listings
    assert listings <= 1  # at most the first look at a job that has a status
    for _ in range(3):
        controller.children_seen.pop(KEY)  # the children are due for a re-read
        watch_saw(controller, cluster, workers=True)
        controller.reconcile_key(KEY)
    assert cluster.listings == listings
    assert cluster.jobs["mnist"]["status"]["replicas"]["desired"] == 2


def test_the_first_look_after_a_start_lists_the_workers() -> None:
    """A replica that just became the leader does not trust what its watches delivered so far."""
    cluster, controller = setup()
    controller.reconcile_key(KEY)
    watch_saw(controller, cluster, workers=False)  # the Job's event is not in yet
    controller.listed_at.clear()  # as start() does
    controller.reconcile_key(KEY)
    assert cluster.listings == 1
    assert [k for k in cluster.created if k[0] == "Job"] == [("Job", "mnist-a0")]


def test_a_restart_is_not_held_for_long_by_a_ghost_pod() -> None:
    """Old pods whose DELETED events were lost: the wait for them is confirmed on the
    apiserver once the last listing is old, and the new attempt starts."""
    cluster, controller = restart_due()
    for index in (0, 1):
        controller.cache.put(PODS, KEY, cluster.put(worker_pod(0, index)))
        cluster.objects.pop(("Pod", f"mnist-a0-{index}-x"))  # gone, and no event came
    watch_saw(controller, cluster, workers=False)
    children_just_seen(controller, cluster)
    controller.listed_at[KEY] = time.monotonic()  # listed moments ago: the cache is trusted
    controller.reconcile_key(KEY)
    assert ("Job", "mnist-a1") not in cluster.created
    controller.listed_at[KEY] -= 3600  # that listing is old now
    watch_saw(controller, cluster, workers=False)
    controller.reconcile_key(KEY)
    assert ("Job", "mnist-a1") in cluster.created
    assert controller.cache.owned(PODS, KEY) == []  # the listing pruned the ghosts


def run_worker_until(controller: Controller, done: Callable[[], bool]) -> None:
    """Run the controller's workers (as the operator starts them) with KEY enqueued, until
    `done()`."""

    async def run() -> None:
        controller.start()
        try:
            controller.enqueue(*KEY)
            deadline = time.monotonic() + 60  # generous: CI shares 2 cores with TensorFlow
            while not done():
                assert time.monotonic() < deadline, "the workers did not get there in 60 s"
                await asyncio.sleep(0.01)
        finally:
            await controller.stop()

    asyncio.run(run())


def test_a_stale_cached_job_conflicts_and_is_read_again() -> None:
    cluster, controller = setup()
    controller.reconcile_key(KEY)
    for index in (0, 1):  # the workers start, and the watch saw them
        cluster.put(worker_pod(0, index))
    watch_saw(controller, cluster, workers=True)
    # The user suspends the job; that watch event has not arrived: the cached job is stale.
    fresh = cluster.get_job(*KEY)
    fresh["spec"]["runPolicy"] = {"suspend": True}
    fresh["metadata"]["generation"] += 1
    cluster.put(fresh)

    # Wait for the whole end state: the status write and the workers' deletion may be done by
    # different reconciles, and the workers stop between them.
    run_worker_until(
        controller,
        lambda: (
            cluster.jobs["mnist"]["status"]["phase"] == "Suspended"
            and ("Job", "mnist-a0") not in cluster.objects
            and KEY not in controller.reread
        ),
    )
    assert cluster.conflicts == 1  # the write from the stale copy was refused, not applied
    assert KEY not in controller.reread  # and the job is back to being read from the cache
    assert ("Job", "mnist-a0") not in cluster.objects  # the suspension stopped the workers


def test_a_job_deleted_meanwhile_is_forgotten_not_retried() -> None:
    cluster, controller = setup()
    controller.reconcile_key(KEY)
    assert KEY in controller.children_seen
    del cluster.jobs["mnist"]  # the cache never saw it: the controller reads the apiserver

    run_worker_until(controller, lambda: KEY not in controller.children_seen)
    assert KEY not in controller.failures  # Gone is no error to back off from
