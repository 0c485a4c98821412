"""Fixtures for tests against the real local control plane (testbin/localcluster.py).

Fixtures:
  cluster    session  a started ``LocalCluster`` (etcd, kube-apiserver,
                      kube-controller-manager, kube-scheduler, kwok with 2 GPU nodes of
                      8 ``nvidia.com/gpu`` and 1 CPU node) in a temporary state dir on
                      free loopback ports; stopped at the end of the session. Never builds:
                      fails with the `make testbin` command when binaries are missing.
  namespace  function a fresh namespace (``t-<test name>-<random>``) whose ``default``
                      ServiceAccount exists; deleted afterwards (without waiting).
  kubectl    function a ``clusterkit.Kubectl`` bound to the cluster's admin kubeconfig
                      and to ``namespace``: ``kubectl("get", "pods")`` -> CompletedProcess;
                      also ``.apply(manifest)``, ``.json(...)``, ``.get(kind, name)``,
                      ``.items(kind, ...)``. ``kubectl.with_namespace(None)`` for none.

When a test that used ``cluster`` fails, the report gets a section with the tail of
every component's log and the events of the test's namespace.

Environment: ``TFTJ_TESTBIN_BIN`` overrides the binaries dir; ``TFTJ_KEEP_CLUSTER=1``
leaves the state dir (logs, kubeconfig) in place after the session.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTBIN = Path(__file__).resolve().parents[2] / "testbin"
if str(TESTBIN) not in sys.path:
    sys.path.insert(0, str(TESTBIN))

from clusterkit import Kubectl, wait_for  # noqa: E402
from devoperator import OperatorProcess, start_for_tests, stop_for_tests  # noqa: E402
from localcluster import LocalCluster, reap_stale_clusters  # noqa: E402

#: Every test cluster lives under here, so a later run can find and remove leftovers.
CLUSTERS_ROOT = Path(tempfile.gettempdir()) / "tftj-testclusters"

_STASH_CLUSTER = pytest.StashKey[LocalCluster]()
_STASH_NAMESPACE = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """The local control plane, started once per test session."""
    bin_dir = os.environ.get("TFTJ_TESTBIN_BIN")
    CLUSTERS_ROOT.mkdir(parents=True, exist_ok=True)
    reap_stale_clusters(CLUSTERS_ROOT)
    missing = LocalCluster(CLUSTERS_ROOT, bin_dir=bin_dir).missing_binaries()
    if missing:
        pytest.fail(
            f"control plane binaries missing from {bin_dir or 'testbin/bin'}: "
            f"{', '.join(missing)}. Build them with `make testbin` "
            "(first build 15-35 min, then cached).",
            pytrace=False,
        )
    state_dir = Path(tempfile.mkdtemp(prefix="session-", dir=CLUSTERS_ROOT))
    local = LocalCluster(state_dir, bin_dir=bin_dir, die_with_parent=True)
    request.config.stash[_STASH_CLUSTER] = local
    try:
        local.start()
    except Exception as exc:
        logs = local.logs(lines=40)
        local.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
        pytest.fail(f"local control plane failed to start: {exc}\n{logs}", pytrace=False)
    yield local
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


@pytest.fixture
def namespace(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, ready for pods (its ServiceAccount exists)."""
    name = _namespace_name(request.node.name)
    kubectl = Kubectl.for_cluster(cluster)
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "testbin.tftj.dev/test=true")
    # ServiceAccount admission rejects pods until the controller-manager has created
    # the namespace's "default" ServiceAccount.
    wait_for(
        lambda: (
            kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0
        ),
        timeout=30,
        message=f"ServiceAccount default in namespace {name}",
    )
    request.node.stash[_STASH_NAMESPACE] = name
    yield name
    # Namespace deletion runs in the namespace controller; nobody needs to wait for it.
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def kubectl(cluster: LocalCluster, namespace: str) -> Kubectl:
    """The real kubectl, admin credentials, default namespace = the test's namespace."""
    return Kubectl.for_cluster(cluster, namespace)


@pytest.fixture(scope="module")
def operator(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """`tftj operator` as a subprocess under its own ServiceAccount (RBAC from the one rules
    file), with its webhook registered; one per test module."""
    proc = start_for_tests(cluster.kubeconfig, tmp_path_factory.mktemp("operator"))
    yield proc
    stop_for_tests(proc)


@pytest.fixture
def k(
    kubectl: Kubectl, operator: OperatorProcess, request: pytest.FixtureRequest
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
    if not report.failed or "cluster" not in getattr(item, "fixturenames", ()):
        return
    local = item.config.stash.get(_STASH_CLUSTER, None)
    if local is None:
        return
    report.sections.append(("control plane logs (last 40 lines each)", local.logs(lines=40)))
    ns = item.stash.get(_STASH_NAMESPACE, None)
    if ns:
        events = Kubectl.for_cluster(local, ns)(
            "get", "events", "--sort-by=.lastTimestamp", check=False
        )
        pods = Kubectl.for_cluster(local, ns)("get", "pods,jobs", "-o", "wide", check=False)
        report.sections.append(
            (f"namespace {ns}", f"{pods.stdout}{pods.stderr}\n{events.stdout}{events.stderr}")
        )
