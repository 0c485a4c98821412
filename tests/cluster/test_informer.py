"""The operator's lean informer (tftj.operator.informer) against the real apiserver: it
delivers only the operator's worker pods, in their lean form, with every change and the
deletion; and a re-list reports as DELETED what vanished while it was not watching (what
kopf's watches never told the operator)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from clusterkit import HOLD_LABEL, Kubectl, pod_manifest, wait_for
from kubernetes import config
from localcluster import LocalCluster
from tftj.operator.children import LABEL_JOB_NAME, LABEL_ROLE
from tftj.operator.informer import WORKER_PODS, Informer

WORKER = {LABEL_JOB_NAME: "inf", LABEL_ROLE: "worker", HOLD_LABEL: "true"}


class Recorder:
    """Collects (event type, name) pairs and the bodies as the informer's thread delivers them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, kind: str, body: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((kind, body["metadata"]["name"]))
            self.bodies.append(body)

    def of(self, name: str) -> list[str]:
        with self.lock:
            return [kind for kind, n in self.events if n == name]


@pytest.fixture
def informer(cluster: LocalCluster, namespace: str) -> Iterator[tuple[Informer, Recorder]]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    watcher = Informer(api, WORKER_PODS, namespace, watch_timeout_seconds=30, connect_timeout=10)
    recorder = Recorder()
    watcher.start(recorder)
    try:
        yield watcher, recorder
    finally:
        watcher.stop()
        api.close()


def test_worker_pods_are_delivered_lean_through_their_deletion(
    kubectl: Kubectl, informer: tuple[Informer, Recorder]
) -> None:
    watcher, seen = informer
    wait_for(watcher.synced.is_set, 30, message="the informer's first listing")
    kubectl.apply(pod_manifest("inf-worker", labels=WORKER))
    kubectl.apply(pod_manifest("not-a-worker", labels={LABEL_JOB_NAME: "inf", HOLD_LABEL: "true"}))

    def running() -> bool:
        with seen.lock:
            return any(
                b["metadata"]["name"] == "inf-worker"
                and b.get("status", {}).get("phase") == "Running"
                for b in seen.bodies
            )

    wait_for(running, 60, message="the worker pod's Running phase delivered")
    assert seen.of("inf-worker")[0] == "ADDED"
    body = next(b for b in seen.bodies if b["metadata"]["name"] == "inf-worker")
    assert "spec" not in body and "managedFields" not in body["metadata"]  # lean
    assert body["metadata"]["labels"][LABEL_JOB_NAME] == "inf"

    kubectl("delete", "pod", "inf-worker", "--grace-period=0", "--force", "--wait=true")
    wait_for(lambda: "DELETED" in seen.of("inf-worker"), 60, message="the DELETED event")
    assert seen.of("not-a-worker") == []  # the server-side selector keeps it out
    assert watcher.known == {}  # nothing of the deleted worker is kept


def test_a_relist_reports_what_vanished_while_not_watching(
    kubectl: Kubectl, informer: tuple[Informer, Recorder]
) -> None:
    watcher, seen = informer
    for name in ("inf-a", "inf-b"):
        kubectl.apply(pod_manifest(name, labels=WORKER))
    wait_for(lambda: seen.of("inf-a") and seen.of("inf-b"), 60, message="both pods delivered")
    watcher.stop()  # a watch gap: the informer hears nothing from here on
    kubectl("delete", "pod", "inf-a", "--grace-period=0", "--force", "--wait=true")
    assert "DELETED" not in seen.of("inf-a")

    relists = watcher.relists
    watcher.relist()  # what run() does after an expired resourceVersion (HTTP 410)
    assert watcher.relists == relists + 1
    assert seen.of("inf-a")[-1] == "DELETED"
    assert seen.of("inf-b")[-1] == "ADDED"  # still there: delivered again, not deleted
    assert {name for _, name in watcher.known} == {"inf-b"}
