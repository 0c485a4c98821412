"""The pytest fixtures tests/cluster and tests/node share, and the pieces behind the rest.

Both tiers start one LocalCluster per session (tests/node with a real node), give every
test a fresh namespace, run the operator (a host process, or installed by the chart) and
attach component logs to failures. Each tier's conftest defines its own ``cluster`` and
``operator`` fixtures and imports the shared ones from here by name, which registers them
there (importable once ``testbin/`` is on ``sys.path``)::

    from clusterfixtures import k, kubectl, namespace, pytest_runtest_makereport

Shared fixtures:
  namespace  function a fresh namespace (``t-<test name>-<random>``) whose ``default``
                      ServiceAccount exists; deleted afterwards (without waiting).
  kubectl    function a ``clusterkit.Kubectl`` bound to the cluster's admin kubeconfig
                      and to ``namespace``.
  k          function ``kubectl`` with the tier's ``operator`` running; the operator's log
                      is printed when the test failed.
Hook: a failed test that used ``cluster`` gets a report section with the tail of every
component's log and the pods, jobs and events of its namespace.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from clusterkit import Kubectl, wait_for
from localcluster import LocalCluster, reap_stale_clusters

#: Every test cluster lives under here, so a later run can find and remove leftovers.
CLUSTERS_ROOT = Path(tempfile.gettempdir()) / "tftj-testclusters"

STASH_CLUSTER = pytest.StashKey[LocalCluster]()
STASH_NAMESPACE = pytest.StashKey[str]()


def session_cluster(
    request: pytest.FixtureRequest, hint: str, **options: Any
) -> Iterator[LocalCluster]:
    """Start a LocalCluster for the fixture's scope (the session, or a module whose faults
    must not break the session's cluster; ``options`` go to LocalCluster), yield it, stop it.
    A missing binary or prerequisite fails the fixture with ``hint``."""
    bin_dir = os.environ.get("TFTJ_TESTBIN_BIN")
    CLUSTERS_ROOT.mkdir(parents=True, exist_ok=True)
    reap_stale_clusters(CLUSTERS_ROOT)
    missing = LocalCluster(CLUSTERS_ROOT, bin_dir=bin_dir, **options).missing_binaries()
    if missing:
        pytest.fail(
            f"binaries missing from {bin_dir or 'testbin/bin'}: {', '.join(missing)}. {hint}",
            pytrace=False,
        )
    state_dir = Path(tempfile.mkdtemp(prefix=f"{request.scope}-", dir=CLUSTERS_ROOT))
    local = LocalCluster(state_dir, bin_dir=bin_dir, die_with_parent=True, **options)
    outer = request.config.stash.get(STASH_CLUSTER, None)
    request.config.stash[STASH_CLUSTER] = local
    try:
        local.start()
    except Exception as exc:
        logs = local.logs(lines=40)
        local.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
        pytest.fail(f"local cluster failed to start: {exc}\n{logs}", pytrace=False)
    try:
        yield local
    finally:
        if outer is not None:  # a module's own cluster ends: failures report the session's again
            request.config.stash[STASH_CLUSTER] = outer
    if os.environ.get("TFTJ_KEEP_CLUSTER") == "1":
        print(
            f"\nTFTJ_KEEP_CLUSTER=1: cluster state left in {state_dir}; "
            f"stop it with: python testbin/localcluster.py down --state-dir {state_dir}"
        )
        return
    local.stop()
    shutil.rmtree(state_dir, ignore_errors=True)


def _namespace_name(test_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")
    suffix = secrets.token_hex(3)
    return f"t-{base[: 63 - len(suffix) - 3].rstrip('-')}-{suffix}"


def fresh_namespace(
    cluster: LocalCluster, request: pytest.FixtureRequest, labels: dict[str, str] | None = None
) -> Iterator[str]:
    """Create a namespace for one test (ready for pods: its ServiceAccount exists), yield
    its name, delete it without waiting."""
    name = _namespace_name(request.node.name)
    kubectl = Kubectl.for_cluster(cluster)
    kubectl("create", "namespace", name)
    all_labels = {"testbin.tftj.dev/test": "true", **(labels or {})}
    kubectl("label", "namespace", name, *(f"{k}={v}" for k, v in all_labels.items()))
    # ServiceAccount admission rejects pods until the controller-manager has created
    # the namespace's "default" ServiceAccount.
    wait_for(
        lambda: (
            kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0
        ),
        timeout=30,
        message=f"ServiceAccount default in namespace {name}",
    )
    request.node.stash[STASH_NAMESPACE] = name
    yield name
    # Namespace deletion runs in the namespace controller; nobody needs to wait for it.
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def failure_sections(item: pytest.Item) -> list[tuple[str, str]]:
    """Report sections for a failed test that used the cluster: component logs, and the
    pods, jobs and events of its namespace."""
    local = item.config.stash.get(STASH_CLUSTER, None)
    if local is None:
        return []
    sections = [("cluster logs (last 40 lines each)", local.logs(lines=40))]
    ns = item.stash.get(STASH_NAMESPACE, None)
    if ns:
        kubectl = Kubectl.for_cluster(local, ns)
        events = kubectl("get", "events", "--sort-by=.lastTimestamp", check=False)
        pods = kubectl("get", "pods,jobs", "-o", "wide", check=False)
        sections.append(
            (f"namespace {ns}", f"{pods.stdout}{pods.stderr}\n{events.stdout}{events.stderr}")
        )
    return sections


class LoggingOperator(Protocol):
    """What ``k`` needs of a tier's operator fixture."""

    def logs(self, lines: int = 80) -> str: ...


@pytest.fixture
def namespace(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, ready for pods (its ServiceAccount exists)."""
    yield from fresh_namespace(cluster, request)


@pytest.fixture
def kubectl(cluster: LocalCluster, namespace: str) -> Kubectl:
    """The real kubectl, admin credentials, default namespace = the test's namespace."""
    return Kubectl.for_cluster(cluster, namespace)


@pytest.fixture
def k(
    kubectl: Kubectl, operator: LoggingOperator, request: pytest.FixtureRequest
) -> Iterator[Kubectl]:
    """kubectl in the test's namespace with the operator running; its log is shown on failure."""
    failed_before = request.session.testsfailed
    yield kubectl
    if request.session.testsfailed > failed_before:
        print(f"---- operator log ----\n{operator.logs(80)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Attach component logs (and the namespace's events) to failing cluster tests."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "cluster" in getattr(item, "fixturenames", ()):
        report.sections.extend(failure_sections(item))
