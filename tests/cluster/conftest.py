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

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTBIN = Path(__file__).resolve().parents[2] / "testbin"
if str(TESTBIN) not in sys.path:
    sys.path.insert(0, str(TESTBIN))

from clusterfixtures import failure_sections, fresh_namespace, session_cluster  # noqa: E402
from clusterkit import Kubectl  # noqa: E402
from devoperator import OperatorProcess, start_for_tests, stop_for_tests  # noqa: E402
from localcluster import LocalCluster  # noqa: E402


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """The local control plane, started once per test session."""
    yield from session_cluster(
        request, "Build them with `make testbin` (first build 15-35 min, then cached)."
    )


@pytest.fixture
def namespace(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, ready for pods (its ServiceAccount exists)."""
    yield from fresh_namespace(cluster, request)


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
    if report.failed and "cluster" in getattr(item, "fixturenames", ()):
        report.sections.extend(failure_sections(item))
