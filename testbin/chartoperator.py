#!/usr/bin/env python3
"""Install the operator IN a local cluster with a real node, from its image, with the chart.

What a user does on a real cluster: ``helm install`` of charts/tftj (CRD, RBAC, Deployment,
webhook Service + ValidatingWebhookConfiguration with a generated CA) into a namespace that
enforces Pod Security "restricted". The operator pod runs the ``operator`` image built from
the Dockerfile (testbin/images.sh; ``pullPolicy: Never`` proves nothing is pulled) on the
real node, reaches the apiserver through the ``kubernetes`` Service and is called by the
apiserver at its webhook endpoint (see testbin/realnode.py for how, without kube-proxy).

    python testbin/chartoperator.py up   --kubeconfig .cluster/kubeconfig
    python testbin/chartoperator.py down --kubeconfig .cluster/kubeconfig
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TESTBIN_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTBIN_DIR.parent
CHART = REPO_DIR / "charts" / "tftj"
NAMESPACE = "tftj-system"
RELEASE = "tftj"

sys.path.insert(0, str(TESTBIN_DIR))

from devoperator import Admin, wait_until  # noqa: E402
from localcluster import child_env  # noqa: E402

#: Short intervals for tests and demos (tests poll; the chart's defaults suit production).
FAST_VALUES = ("operator.resyncSeconds=2", "operator.progressSeconds=1", "operator.logFormat=plain")


@dataclass
class ChartOperator:
    """One release of charts/tftj in ``namespace``."""

    admin: Admin
    helm_binary: Path
    namespace: str = NAMESPACE
    release: str = RELEASE

    @property
    def deployment(self) -> str:
        return f"{self.release}-operator"

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.helm_binary), f"--kubeconfig={self.admin.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=child_env(),
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def install(self, values: Sequence[str] = FAST_VALUES, timeout: float = 300) -> None:
        """Install (or upgrade) the release and wait until its webhook answers."""
        self.admin.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": self.namespace,
                        # The chart's pods are built for "restricted"; enforce it.
                        "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
                    },
                }
            ]
        )
        sets = [a for v in ("image.pullPolicy=Never", *values) for a in ("--set", v)]
        self.helm("upgrade", "--install", self.release, str(CHART), "-n", self.namespace, *sets)
        self.admin(
            "rollout",
            "status",
            f"deployment/{self.deployment}",
            "-n",
            self.namespace,
            f"--timeout={int(timeout)}s",
            timeout=timeout + 30,
        )
        wait_until(self._webhook_answers, timeout, "the operator's webhook to answer")

    def template(self, *values: str) -> list[dict[str, Any]]:
        """The objects ``helm install --set <values>`` would create in this cluster
        (``helm template`` for the server's Kubernetes version)."""
        version = json.loads(self.admin("version", "-o", "json").stdout)["serverVersion"]
        sets = [a for v in values for a in ("--set", v)]
        rendered = self.helm(
            "template",
            self.release,
            str(CHART),
            "-n",
            self.namespace,
            f"--kube-version={version['gitVersion']}",
            *sets,
        )
        return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]

    def _webhook_answers(self) -> bool:
        probe = {
            "apiVersion": "tftj.dev/v1alpha1",
            "kind": "TFTrainingJob",
            "metadata": {"name": "webhook-probe", "namespace": self.namespace},
            "spec": {"data": {"format": "synthetic"}, "workers": {"gpusPerWorker": 0}},
        }
        proc = self.admin(
            "create", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False
        )
        if proc.returncode != 0 and "failed calling webhook" in proc.stderr:
            return False
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
        return True

    def logs(self, lines: int = 80) -> str:
        proc = self.admin(
            "logs",
            f"deployment/{self.deployment}",
            "-n",
            self.namespace,
            f"--tail={lines}",
            check=False,
        )
        return proc.stdout + proc.stderr

    def uninstall(self) -> None:
        self.helm("uninstall", self.release, "-n", self.namespace, "--wait", check=False)


def for_kubeconfig(kubeconfig: Path, bin_dir: Path | None = None) -> ChartOperator:
    bins = bin_dir or Path(os.environ.get("TFTJ_TESTBIN_BIN") or TESTBIN_DIR / "bin")
    return ChartOperator(Admin(kubeconfig.resolve()), bins / "helm")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--kubeconfig", type=Path, default=Path(".cluster/kubeconfig"))
    args = parser.parse_args(argv)
    if not args.kubeconfig.is_file():
        print(f"chartoperator: no kubeconfig at {args.kubeconfig}: start the cluster first")
        return 2
    operator = for_kubeconfig(args.kubeconfig)
    if args.action == "down":
        operator.uninstall()
        print("tftj operator release uninstalled")
        return 0
    operator.install()
    print(
        f"tftj operator running in the cluster: deployment {operator.deployment} in namespace "
        f"{operator.namespace} (kubectl logs -n {operator.namespace} deploy/{operator.deployment})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
