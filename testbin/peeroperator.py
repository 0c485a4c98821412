"""The benchmark's peer: Kubeflow training-operator (TFJob only) as a host process against a
LocalCluster (bench/operator_bench.py).

Everything comes from the one pinned module, testbin/peer/go.mod: the binary (built and cached
by `bash testbin/build.sh peer`) and, at run time, its TFJob CRD and webhook registration, read
from the same module version in GOMODCACHE. Nothing of the peer is copied into the repository.

The differences from its own deployment (manifests/base) are those of running outside a pod:
- its webhook is registered with a ``url`` clientConfig on 127.0.0.1 instead of its Service,
  and only the TFJob entry of its ValidatingWebhookConfiguration (the only scheme enabled);
- its certificate rotator (cert-controller, always on) finds the Secret it manages already
  filled with a CA and serving certificate made here: valid for its own names (the CA's
  "training-operator-ca", the Service's "training-operator.kubeflow.svc") and for 127.0.0.1,
  so it keeps them and only injects the CA into the webhook registration, as it does in a
  cluster. Its certificate directory is a fixed path, /tmp/k8s-webhook-server/serving-certs,
  which a kubelet would mount from that Secret: here the process runs in a private mount
  namespace where that path is a bind mount of this run's copy (the host sees an empty dir);
- metrics and health on loopback ports, leader election off;
- it talks to the apiserver with the admin kubeconfig (its RBAC is its own business).
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from hostcontroller import HostController
from kueuecluster import in_private_mounts, module_source
from localcluster import (
    _set_pdeathsig,
    child_env,
    free_port,
    issue_cert,
    make_ca,
    pem_cert,
    pem_key,
    wait_for,
)

TESTBIN_DIR = Path(__file__).resolve().parent
MODULE_DIR = TESTBIN_DIR / "peer"
MODULE = "github.com/kubeflow/training-operator"
CRD_FILE = Path("manifests/base/crds/kubeflow.org_tfjobs.yaml")
WEBHOOK_MANIFESTS = Path("manifests/base/webhook/manifests.yaml")
# Names cmd/training-operator.v1/main.go and pkg/cert/cert.go use (their defaults).
NAMESPACE = "kubeflow"
SECRET = "training-operator-webhook-cert"
WEBHOOK_CONFIG = "validator.training-operator.kubeflow.org"
SERVICE_DNS = f"training-operator.{NAMESPACE}.svc"
CA_NAME = "training-operator-ca"
CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"
#: The label the peer puts on every pod of a TFJob (pkg/apis/kubeflow.org/v1).
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
WEBHOOK_RESOURCE = "tfjobs"

#: As shipped (its flag defaults) and with client rate limits and parallelism raised.
SHIPPED: dict[str, int] = {"kube-api-qps": 20, "kube-api-burst": 30, "controller-threads": 1}
TUNED: dict[str, int] = {"kube-api-qps": 200, "kube-api-burst": 400, "controller-threads": 16}


def peer_binary(bin_dir: str | Path | None = None) -> Path:
    return Path(bin_dir or TESTBIN_DIR / "bin") / "training-operator"


def local_webhook(manifests: str, port: int, ca_bundle: bytes) -> dict[str, Any]:
    """The peer's TFJob webhook registration, pointed at 127.0.0.1 under the name its
    certificate rotator injects the CA into."""
    hooks = []
    for doc in yaml.safe_load_all(manifests):
        for hook in (doc or {}).get("webhooks") or []:
            resources = {r for rule in hook.get("rules") or [] for r in rule.get("resources") or []}
            if WEBHOOK_RESOURCE in resources:
                path = hook["clientConfig"]["service"]["path"]
                hook["clientConfig"] = {
                    "url": f"https://127.0.0.1:{port}{path}",
                    "caBundle": base64.b64encode(ca_bundle).decode(),
                }
                hooks.append(hook)
    if not hooks:
        raise RuntimeError(f"no {WEBHOOK_RESOURCE} webhook in the peer's {WEBHOOK_MANIFESTS}")
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIG},
        "webhooks": hooks,
    }


def webhook_secret() -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(Secret data, files for the certificate directory). The rotator loads the CA key as
    PKCS#1 RSA and checks the CA for CA_NAME and the serving certificate for SERVICE_DNS."""
    ca = make_ca(
        CA_NAME,
        dns_names=[CA_NAME],
        key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )
    leaf = issue_cert(
        ca, SERVICE_DNS, dns_names=[SERVICE_DNS], ip_addresses=["127.0.0.1"], server=True
    )
    files = {"tls.crt": pem_cert(leaf.cert), "tls.key": pem_key(leaf.key)}
    return {"ca.crt": pem_cert(ca.cert), "ca.key": pem_key(ca.key), **files}, files


def tfjob(
    name: str, workers: int, pod_labels: dict[str, str], resources: dict[str, Any]
) -> dict[str, Any]:
    """A TFJob of `workers` Worker replicas, the pod shape of tftj's worker Jobs."""
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": name},
        "spec": {
            "tfReplicaSpecs": {
                "Worker": {
                    "replicas": workers,
                    "restartPolicy": "Never",
                    "template": {
                        "metadata": {"labels": pod_labels},
                        "spec": {
                            "containers": [
                                {
                                    "name": "tensorflow",  # the peer's required name
                                    "image": "tftj/trainer:0.1.0",
                                    "command": ["python", "-m", "tftj_trainer"],
                                    "resources": resources,
                                }
                            ]
                        },
                    },
                }
            }
        },
    }


@dataclass
class PeerOperator(HostController):
    """One training-operator process; ``start()`` installs its CRD and webhook first."""

    flags: dict[str, int] = field(default_factory=lambda: dict(SHIPPED))
    version: str = ""
    webhook_port: int = 0
    metrics_port: int = 0
    #: the CA the webhook's certificate chains to (set by start())
    ca_bundle: bytes = b""
    NAME: ClassVar[str] = "training-operator"

    def start(self) -> PeerOperator:
        if not self.binary.exists():
            raise FileNotFoundError(
                f"{self.binary} is missing: run `bash testbin/build.sh peer` first"
            )
        self.version, source = module_source(MODULE_DIR, MODULE)
        crd = source / CRD_FILE
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        # Right after the apply the CRD may have no conditions yet (kubectl wait then fails).
        wait_for(
            lambda: self.kubectl(
                "wait", "--for=condition=Established", "--timeout=30s", "-f", str(crd)
            ),
            timeout=60,
            message="the TFJob CRD to be established",
        )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.webhook_port = self.webhook_port or free_port()
        self.health_port = self.health_port or free_port()
        self.metrics_port = self.metrics_port or free_port()

        data, files = webhook_secret()
        self.ca_bundle = data["ca.crt"]
        cert_dir = self.state_dir / "serving-certs"
        cert_dir.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (cert_dir / name).write_bytes(content)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": NAMESPACE},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        webhook = local_webhook(
            (source / WEBHOOK_MANIFESTS).read_text(), self.webhook_port, data["ca.crt"]
        )
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([namespace, secret, webhook]))
        self.webhook_configs = [("validatingwebhookconfiguration", WEBHOOK_CONFIG)]

        mount = f'mkdir -p {CERT_DIR} && mount --bind "$1" {CERT_DIR} && shift && exec "$@"'
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [
                *in_private_mounts(mount, str(cert_dir)),
                str(self.binary),
                "--enable-scheme=tfjob",
                f"--webhook-server-port={self.webhook_port}",
                f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
                f"--health-probe-bind-address=127.0.0.1:{self.health_port}",
                *(f"--{flag}={value}" for flag, value in self.flags.items()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**child_env(), "KUBECONFIG": str(self.kubeconfig), "MY_POD_NAMESPACE": NAMESPACE},
            start_new_session=True,
            # A crashed benchmark must not leave the peer (and its webhook) behind.
            preexec_fn=_set_pdeathsig,
        )
        # Ready is not enough: the apiserver must reach the webhook (a dry-run TFJob).
        probe = {**tfjob("webhook-probe", 1, {}, {})}
        probe["metadata"] = {"name": "webhook-probe", "namespace": NAMESPACE}
        self.wait_ready(probe)
        return self
