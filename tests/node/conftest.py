"""Fixtures for the real-node tier: TFTrainingJobs whose workers run as real containers.

Fixtures:
  cluster    session  a started ``LocalCluster`` with a real node (testbin/realnode.py:
                      kubelet + containerd + runc + CNI bridge + CoreDNS) running the trainer
                      image built from the Dockerfile (testbin/images.sh), next to one kwok
                      GPU node carrying the nvidia.com/gpu taint (pods that ask for no GPU
                      must land on the real node). Fails with the `make` command that
                      builds what is missing.
  operator   session  the operator in the cluster, installed with the Helm chart from the
                      operator image (testbin/chartoperator.py).
  namespace, kubectl, k  as in tests/cluster (testbin/clusterfixtures.py), ``k`` with the
                      operator above.

Environment: as tests/cluster (``TFTJ_TESTBIN_BIN``, ``TFTJ_KEEP_CLUSTER=1``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTBIN = Path(__file__).resolve().parents[2] / "testbin"
if str(TESTBIN) not in sys.path:
    sys.path.insert(0, str(TESTBIN))

from chartoperator import ChartOperator, for_kubeconfig  # noqa: E402
from clusterfixtures import (  # noqa: E402, F401
    # Shared with the other tier; importing a fixture or hook here registers it.
    k,
    kubectl,
    namespace,
    pytest_runtest_makereport,
    session_cluster,
)
from localcluster import LocalCluster, default_nodes  # noqa: E402


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """The local control plane plus a real node, started once per test session."""
    yield from session_cluster(
        request,
        "Build them with `make testbin images` (first build ~20 min on top of the control"
        " plane, then cached).",
        real_node=True,
        nodes=default_nodes(gpu_nodes=1, gpus_per_node=8, cpu_nodes=0, gpu_taint=True),
        start_timeout=300.0,
    )


@pytest.fixture(scope="session")
def operator(cluster: LocalCluster) -> Iterator[ChartOperator]:
    """The operator IN the cluster: `helm install` of charts/tftj (RBAC, webhook behind its
    Service, Pod Security "restricted" namespace), the image built from the Dockerfile, on the
    real node."""
    release = for_kubeconfig(cluster.kubeconfig, cluster.bin_dir)
    try:
        release.install()
    except Exception as exc:
        pytest.fail(f"installing the chart failed: {exc}\n{release.logs()}", pytrace=False)
    yield release
    release.uninstall()
