"""Kueue's controller manager as a host process against a LocalCluster (tests/cluster/test_kueue.py).

Everything comes from the one pinned module, testbin/kueue/go.mod: the binary (built and
cached by testbin/build.sh) and, at run time, its CRDs and webhook registrations, read from the
same module version in GOMODCACHE (``go mod download`` puts it there; the build already did).
Nothing of Kueue is copied into the repository.

The differences from Kueue's own deployment are those of running outside a pod:
- webhooks are served on 127.0.0.1 with a certificate generated here (SAN 127.0.0.1), and the
  Mutating/ValidatingWebhookConfigurations of Kueue's manifests are registered with a ``url``
  clientConfig and that CA instead of the ``service`` one (internalCertManagement disabled);
- only the webhooks of Kueue's own API and of batch/v1 Jobs are registered: the integration
  enabled here is ``batch/job``, and a Pod/Deployment webhook would put every other test's
  pods behind this process;
- metrics and health on loopback ports, leader election off, the visibility API server off
  (it is an aggregated API server, which needs a Service in front of it);
- with internalCertManagement off, Kueue v0.17 reads its metrics certificate from the fixed
  path /etc/kueue/metrics/certs: the process runs in a private mount namespace where /etc is
  a read-only overlay adding that directory (unshare(1); as non-root in a user namespace), so
  nothing is written to the host's /etc.
Kueue talks to the apiserver with the admin kubeconfig: its RBAC is Kueue's business.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from hostcontroller import HostController
from localcluster import _set_pdeathsig, child_env, free_port

Obj = dict[str, Any]

TESTBIN_DIR = Path(__file__).resolve().parent
MODULE_DIR = TESTBIN_DIR / "kueue"
MODULE = "sigs.k8s.io/kueue"
CRD_DIR = Path("config/components/crd/bases")
WEBHOOK_MANIFESTS = Path("config/components/webhook/manifests.yaml")
WEBHOOK_CONFIG_PREFIX = "kueue-local-"
# Where Kueue v0.17 (cmd/kueue/main.go) reads its metrics certificate, relative to /etc.
METRICS_CERT_DIR = Path("kueue/metrics/certs")
# The API groups whose webhooks are registered (see the module docstring).
WEBHOOK_GROUPS = {"kueue.x-k8s.io", "batch"}


def module_source(module_dir: Path = MODULE_DIR, module: str = MODULE) -> tuple[str, Path]:
    """(version, directory) of the module pinned in `module_dir`/go.mod (Kueue's by default)
    in GOMODCACHE, downloading it if needed."""
    try:
        proc = subprocess.run(
            ["go", "mod", "download", "-json", module],
            cwd=module_dir,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except FileNotFoundError as exc:
        raise RuntimeError(
            f"'go' not found on PATH: {module}'s CRDs are read from its Go module "
            f"({module_dir / 'go.mod'}); install Go >= 1.26"
        ) from exc
    if proc.returncode != 0:
        raise RuntimeError(f"go mod download {module} failed: {proc.stderr.strip()}")
    info = json.loads(proc.stdout)
    return str(info["Version"]), Path(info["Dir"])


def local_webhooks(manifests: str, port: int, ca_bundle: bytes) -> list[dict[str, Any]]:
    """Kueue's webhook configurations, reduced to WEBHOOK_GROUPS and pointed at 127.0.0.1."""
    configs = []
    for doc in yaml.safe_load_all(manifests):
        if not doc:
            continue
        hooks = []
        for hook in doc.get("webhooks") or []:
            groups = {g for rule in hook.get("rules") or [] for g in rule.get("apiGroups") or []}
            if not groups & WEBHOOK_GROUPS:
                continue
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {
                "url": f"https://127.0.0.1:{port}{path}",
                "caBundle": base64.b64encode(ca_bundle).decode(),
            }
            hooks.append(hook)
        doc["metadata"] = {"name": WEBHOOK_CONFIG_PREFIX + doc["metadata"]["name"]}
        doc["webhooks"] = hooks
        configs.append(doc)
    return configs


def configuration(webhook_port: int, cert_dir: Path, health_port: int, metrics_port: int) -> Obj:
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": "kueue-system",
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "integrations": {"frameworks": ["batch/job"]},
    }


def in_private_mounts(script: str, *args: str) -> list[str]:
    """A command prefix running shell `script` (with `args` as $1...) in a private mount
    namespace; the script mounts what it needs and ends with `exec "$@"` on the rest of the
    command line. unshare without --fork execs in place: the pid (and PR_SET_PDEATHSIG) stay
    the program's. Mounts made there are invisible to the host."""
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    namespace = ["unshare", *user, "--mount", "--propagation", "private", "--"]
    return [*namespace, "sh", "-c", script, "sh", *args]


def with_etc_overlay(overlay: Path) -> list[str]:
    """A command prefix whose /etc shows the files under `overlay` on top of the host's
    (read-only overlayfs; the host is unchanged)."""
    script = 'mount -t overlay tftj-kueue -o lowerdir="$1":/etc /etc && shift && exec "$@"'
    return in_private_mounts(script, str(overlay))


@dataclass
class Kueue(HostController):
    """One Kueue controller manager process; ``start()`` installs CRDs and webhooks first."""

    version: str = ""
    webhook_port: int = 0
    metrics_port: int = 0
    NAME: ClassVar[str] = "kueue"

    def install_crds(self, source: Path) -> None:
        crds = source / CRD_DIR
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))

    def start(self) -> Kueue:
        from tftj.operator.certs import ensure_certs

        self.version, source = module_source()
        self.install_crds(source)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.webhook_port = self.webhook_port or free_port()
        self.health_port = self.health_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        certs = ensure_certs(self.state_dir / "certs", ["127.0.0.1"])
        config = self.state_dir / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                configuration(
                    self.webhook_port, certs.certfile.parent, self.health_port, self.metrics_port
                )
            )
        )
        overlay = self.state_dir / "etc-overlay"
        metrics_certs = overlay / METRICS_CERT_DIR
        metrics_certs.mkdir(parents=True, exist_ok=True)
        shutil.copy(certs.certfile, metrics_certs / "tls.crt")
        shutil.copy(certs.keyfile, metrics_certs / "tls.key")
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [
                *with_etc_overlay(overlay),
                str(self.binary),
                f"--config={config}",
                "--feature-gates=VisibilityOnDemand=false",
                "--zap-log-level=2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**child_env(), "KUBECONFIG": str(self.kubeconfig)},
            start_new_session=True,
            # A crashed pytest must not leave Kueue (and its Job webhook) behind.
            preexec_fn=_set_pdeathsig,
        )
        configs = local_webhooks(
            (source / WEBHOOK_MANIFESTS).read_text(), self.webhook_port, certs.cafile.read_bytes()
        )
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(configs))
        self.webhook_configs = [(c["kind"].lower(), c["metadata"]["name"]) for c in configs]
        # Ready is not enough: the apiserver must reach the webhooks (a dry-run object that
        # only the mutating ResourceFlavor webhook touches).
        self.wait_ready(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "ResourceFlavor",
                "metadata": {"name": "webhook-probe"},
            }
        )
        return self


def kueue_binary(bin_dir: str | os.PathLike[str] | None) -> Path:
    return Path(bin_dir or TESTBIN_DIR / "bin") / "kueue"
