#!/usr/bin/env python3
"""Run the tftj operator against a local cluster the way a deployment would, minus the image.

``up`` (idempotent): apply the CRD, create namespace tftj-system with the operator's
ServiceAccount bound to exactly charts/tftj/files/operator-rbac-rules.yaml, write a kubeconfig
for that ServiceAccount, generate the webhook's CA and serving certificate (SAN 127.0.0.1),
start ``tftj operator`` in the background under the ServiceAccount with its webhook on
127.0.0.1, register the ValidatingWebhookConfiguration (as admin: the operator has no right
to), and wait until the webhook answers. ``down`` stops the operator and removes the webhook
registration (so the cluster stays usable without it).

    python testbin/devoperator.py up   --kubeconfig .cluster/kubeconfig --state-dir .cluster/operator
    python testbin/devoperator.py down --kubeconfig .cluster/kubeconfig --state-dir .cluster/operator

Tests use the same pieces (``install``, ``OperatorProcess``) through tests/cluster.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TESTBIN_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTBIN_DIR.parent
# $TFTJ_CRD_FILE installs another CRD (e.g. a freshly generated one) instead of crds/'s.
CRD_FILE = Path(
    os.environ.get("TFTJ_CRD_FILE") or REPO_DIR / "crds" / "tftrainingjobs.tftj.dev.yaml"
)
RBAC_RULES_FILE = REPO_DIR / "charts" / "tftj" / "files" / "operator-rbac-rules.yaml"
SYSTEM_NAMESPACE = "tftj-system"
SERVICE_ACCOUNT = "tftj-operator"
ROLE_NAME = "tftj-operator"
WEBHOOK_CONFIG = "tftj-validate-local"
WEBHOOK_NAME = "validate.tftrainingjobs.tftj.dev"
WEBHOOK_PATH = "/validate-tftrainingjob"
HELD_METRICS = (
    "tftj_operator_cache_objects",
    "tftj_operator_index_entries",
)  # kopf serves a handler at /<handler id>

sys.path.insert(0, str(REPO_DIR / "operator"))
sys.path.insert(0, str(TESTBIN_DIR))


def _find_kubectl() -> str:
    for candidate in (
        os.environ.get("TFTJ_KUBECTL"),
        str(Path(sys.executable).parent / "kubectl"),
        str(REPO_DIR / ".venv" / "bin" / "kubectl"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return "kubectl"


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2
) -> Any:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}") from last


@dataclass
class Admin:
    """kubectl with the cluster's admin kubeconfig."""

    kubeconfig: Path
    binary: str = field(default_factory=_find_kubectl)

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def apply(self, objs: Sequence[dict[str, Any]]) -> None:
        self("apply", "-f", "-", input=yaml.safe_dump_all(objs))


def rbac_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load(RBAC_RULES_FILE.read_text())
    return rules


def install(admin: Admin, crd: Path = CRD_FILE) -> None:
    """CRD, namespace, ServiceAccount and its (cluster-wide) RBAC. Idempotent."""
    admin("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    crd_name = yaml.safe_load(crd.read_text())["metadata"]["name"]
    admin("wait", "--for=condition=Established", f"crd/{crd_name}", "--timeout=60s")
    admin.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}},
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": SERVICE_ACCOUNT, "namespace": SYSTEM_NAMESPACE},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": ROLE_NAME},
                "rules": rbac_rules(),
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": ROLE_NAME},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": ROLE_NAME,
                },
                "subjects": [
                    {
                        "kind": "ServiceAccount",
                        "name": SERVICE_ACCOUNT,
                        "namespace": SYSTEM_NAMESPACE,
                    }
                ],
            },
        ]
    )


def serviceaccount_kubeconfig(admin: Admin, path: Path, server: str | None = None) -> Path:
    """A kubeconfig authenticating as the operator's ServiceAccount (TokenRequest token);
    ``server`` replaces the apiserver URL (a fault test's forwarder)."""
    token = admin(
        "create", "token", SERVICE_ACCOUNT, "-n", SYSTEM_NAMESPACE, "--duration=24h"
    ).stdout.strip()
    config = yaml.safe_load(admin.kubeconfig.read_text())
    context_name = config.get("current-context") or config["contexts"][0]["name"]
    context = next(c for c in config["contexts"] if c["name"] == context_name)["context"]
    cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])
    if server:
        cluster = {**cluster, "cluster": {**cluster["cluster"], "server": server}}
    out = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": cluster["name"], "user": SERVICE_ACCOUNT}}
        ],
        "current-context": "operator",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(out))
    path.chmod(0o600)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def webhook_configuration(port: int, ca_bundle: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIG},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}{WEBHOOK_PATH}",
                    "caBundle": base64.b64encode(ca_bundle).decode(),
                },
                "rules": [
                    {
                        "apiGroups": ["tftj.dev"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["tftrainingjobs"],
                        "scope": "Namespaced",
                    }
                ],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            }
        ],
    }


def _probe_job() -> dict[str, Any]:
    return {
        "apiVersion": "tftj.dev/v1alpha1",
        "kind": "TFTrainingJob",
        "metadata": {"name": "webhook-probe", "namespace": SYSTEM_NAMESPACE},
        "spec": {"data": {"format": "synthetic"}, "workers": {"gpusPerWorker": 0}},
    }


@dataclass
class OperatorProcess:
    """One `tftj operator` process under the ServiceAccount, with its webhook on loopback."""

    admin: Admin
    state_dir: Path
    extra_args: list[str] = field(default_factory=list)
    #: the apiserver URL the operator uses (default: the admin kubeconfig's)
    api_server: str | None = None
    webhook_port: int = 0
    metrics_port: int = 0
    liveness_port: int = 0
    #: the directory holding the `tftj` package to run (default: this checkout's operator/);
    #: benchmarks point it at an older tree to measure before and after in one run
    source_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "operator.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "operator.log"

    @property
    def cert_dir(self) -> Path:
        return self.state_dir / "certs"

    def command(self, kubeconfig: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tftj",
            "operator",
            f"--kubeconfig={kubeconfig}",
            f"--webhook-port={self.webhook_port}",
            "--webhook-addr=127.0.0.1",
            "--webhook-host=127.0.0.1",
            f"--cert-dir={self.cert_dir}",
            f"--metrics-port={self.metrics_port}",
            "--metrics-addr=127.0.0.1",
            f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz",
            # kwok's pod IPs are loopback, a real node's are on its bridge (testbin/realnode.py);
            # never scrape anything else.
            f"--scrape-allowed-cidrs={','.join(self.scrape_cidrs())}",
            *self.extra_args,
        ]

    def scrape_cidrs(self) -> list[str]:
        from realnode import pod_network_of

        # The admin kubeconfig sits in the cluster's state dir (testbin/localcluster.py).
        pod_network = pod_network_of(self.admin.kubeconfig.parent)
        return ["127.0.0.0/8", *([pod_network] if pod_network else [])]

    def start(self, *, die_with_parent: bool = False) -> OperatorProcess:
        from tftj.operator.certs import ensure_certs

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.webhook_port = self.webhook_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        self.liveness_port = self.liveness_port or free_port()
        certs = ensure_certs(self.cert_dir, ["127.0.0.1"])
        kubeconfig = serviceaccount_kubeconfig(
            self.admin, self.state_dir / "operator.kubeconfig", self.api_server
        )
        log = self.log_file.open("ab")
        source = self.source_dir or REPO_DIR / "operator"
        # The kubernetes client writes the kubeconfig's CA to a temporary file it removes only
        # at a clean exit: an operator SIGKILLed (the HA and crash tests) would leave it in /tmp.
        scratch = self.state_dir / "tmp"
        scratch.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(source),
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(scratch),
        }
        self.process = subprocess.Popen(
            self.command(kubeconfig),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.state_dir,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
        self.pid_file.write_text(str(self.process.pid))
        self.admin.apply([webhook_configuration(self.webhook_port, certs.cafile.read_bytes())])
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        def live() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"the operator exited ({self.process.returncode}):\n{self.logs()}"
                )
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
            ) as r:
                return bool(r.status == 200)

        wait_until(live, timeout, "the operator's liveness endpoint")

        def webhook_answers() -> bool:
            proc = self.admin(
                "create", "--dry-run=server", "-f", "-", input=json.dumps(_probe_job()), check=False
            )
            if proc.returncode != 0 and "failed calling webhook" in proc.stderr:
                return False
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr)
            return True

        wait_until(webhook_answers, timeout, "the admission webhook to answer")

    def held(self) -> dict[str, float]:
        """What the operator holds in memory, from its /metrics: `<metric>/<label value>` ->
        count, for tftj_operator_cache_objects and tftj_operator_index_entries."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as resp:
            text = resp.read().decode()
        return {
            f"{family.name}/{next(iter(s.labels.values()))}": s.value
            for family in text_string_to_metric_families(text)
            if family.name in HELD_METRICS
            for s in family.samples
        }

    def logs(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def training_job(
    name: str,
    *,
    replicas: int = 2,
    gpus: int = 0,
    run_seconds: float | None = 1,
    pod_labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A small synthetic-data TFTrainingJob whose worker pods follow the kwok Stage contract
    (run-seconds annotation; hold / exit-code labels via `pod_labels`)."""
    annotations = {"testbin.tftj.dev/run-seconds": str(run_seconds)} if run_seconds else {}
    workers = {
        "replicas": replicas,
        "gpusPerWorker": gpus,
        "podTemplate": {"labels": dict(pod_labels or {}), "annotations": annotations},
    }
    workers.update(spec.pop("workers", {}))
    return {
        "apiVersion": "tftj.dev/v1alpha1",
        "kind": "TFTrainingJob",
        "metadata": {"name": name},
        "spec": {"data": {"format": "synthetic"}, "workers": workers, **spec},
    }


TEST_OPERATOR_ARGS = ["--resync-seconds=2", "--progress-seconds=0.5", "--workers=4"]


LEASE_NAME = "tftj-operator"  # the operator's default --leader-election-name


def leader_args(
    identity: str, lease_seconds: int = 6, renew_seconds: float = 4, retry_seconds: float = 0.5
) -> list[str]:
    """`tftj operator` flags for one replica of a leader-elected pair (short, for tests)."""
    return [
        "--leader-elect",
        f"--leader-election-namespace={SYSTEM_NAMESPACE}",
        f"--leader-election-id={identity}",
        f"--lease-duration-seconds={lease_seconds}",
        f"--renew-deadline-seconds={renew_seconds}",
        f"--retry-period-seconds={retry_seconds}",
    ]


def lease(admin: Admin) -> dict[str, Any]:
    """The operator's Lease's spec ({} when there is none)."""
    proc = admin("get", "lease", LEASE_NAME, "-n", SYSTEM_NAMESPACE, "-o", "json", check=False)
    if proc.returncode != 0:
        return {}
    spec: dict[str, Any] = json.loads(proc.stdout).get("spec") or {}
    return spec


def delete_lease(admin: Admin) -> None:
    admin("delete", "lease", LEASE_NAME, "-n", SYSTEM_NAMESPACE, "--ignore-not-found")


def start_for_tests(
    kubeconfig: Path,
    state_dir: Path,
    extra_args: Sequence[str] = (),
    api_server: str | None = None,
) -> OperatorProcess:
    """Install everything and start an operator with short intervals (tests poll, never sleep)."""
    admin = Admin(Path(kubeconfig))
    install(admin)
    return OperatorProcess(
        admin, state_dir, [*TEST_OPERATOR_ARGS, *extra_args], api_server=api_server
    ).start(die_with_parent=True)


def stop_for_tests(proc: OperatorProcess) -> None:
    proc.stop()
    proc.admin(
        "delete",
        "validatingwebhookconfiguration",
        WEBHOOK_CONFIG,
        "--ignore-not-found",
        check=False,
    )


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _pid_is_operator(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"tftj" in cmdline and b"operator" in cmdline


def down(admin: Admin, state_dir: Path) -> None:
    pid_file = state_dir / "operator.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().strip() or 0)
        if pid and _pid_is_operator(pid):
            os.kill(pid, signal.SIGTERM)
            try:
                wait_until(lambda: not _pid_is_operator(pid), 15, "the operator to stop")
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
        pid_file.unlink()
    admin(
        "delete",
        "validatingwebhookconfiguration",
        WEBHOOK_CONFIG,
        "--ignore-not-found",
        check=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=Path(".cluster/kubeconfig"),
        help="the cluster's admin kubeconfig",
    )
    parser.add_argument("--state-dir", type=Path, default=Path(".cluster/operator"))
    parser.add_argument("--crd", type=Path, default=CRD_FILE)
    parser.epilog = "Other flags (e.g. --resync-seconds=5) are passed to `tftj operator`."
    args, operator_args = parser.parse_known_args(argv)
    args.operator_args = [a for a in operator_args if a != "--"]
    if not args.kubeconfig.is_file():
        print(
            f"devoperator: no kubeconfig at {args.kubeconfig}: start the cluster first "
            "(python testbin/localcluster.py up)",
            file=sys.stderr,
        )
        return 2
    admin = Admin(args.kubeconfig.resolve())
    state_dir = args.state_dir.resolve()
    if args.action == "down":
        down(admin, state_dir)
        print("tftj operator stopped")
        return 0
    down(admin, state_dir)  # `up` twice restarts it rather than starting a second one
    install(admin, args.crd)
    proc = OperatorProcess(admin, state_dir, list(args.operator_args)).start()
    print(
        f"tftj operator running (pid {proc.process.pid if proc.process else '?'}), "
        f"webhook https://127.0.0.1:{proc.webhook_port}{WEBHOOK_PATH}, "
        f"metrics http://127.0.0.1:{proc.metrics_port}/metrics, log {proc.log_file}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
