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
  operator   module   `tftj operator` as a host process (testbin/devoperator.py).
  k          function ``kubectl`` with the operator running; its log is shown on failure.
namespace, kubectl, k and the failure-report hook are shared with tests/node
(testbin/clusterfixtures.py).

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

from clusterfixtures import (  # noqa: E402, F401
    # Shared with the other tier; importing a fixture or hook here registers it.
    k,
    kubectl,
    namespace,
    pytest_runtest_makereport,
    session_cluster,
)
from devoperator import OperatorProcess, start_for_tests, stop_for_tests  # noqa: E402
from localcluster import LocalCluster  # noqa: E402


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """The local control plane, started once per test session."""
    yield from session_cluster(
        request, "Build them with `make testbin` (first build 15-35 min, then cached)."
    )


@pytest.fixture(scope="module")
def operator(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """`tftj operator` as a subprocess under its own ServiceAccount (RBAC from the one rules
    file), with its webhook registered; one per test module."""
    proc = start_for_tests(cluster.kubeconfig, tmp_path_factory.mktemp("operator"))
    yield proc
    stop_for_tests(proc)
