"""A real Kubernetes node next to the local control plane: kubelet + containerd + runc + CNI.

``LocalCluster(real_node=True)`` starts one (``make up-real``, tests/node). It runs real
containers from the images ``testbin/images.sh`` builds from the repository's Dockerfile,
so a TFTrainingJob trains in real pods. What it consists of, all owned by one cluster's
state dir (``<state>/node``) and one id derived from it:

* a Linux bridge ``tftj<id>`` with the gateway IP of a free ``10.244.N.0/24``: the pod
  network (CNI ``bridge`` + ``host-local`` + ``loopback`` from Debian's
  containernetworking-plugins). No masquerade, no port maps: no iptables rule is added
  and pods reach nothing but the bridge.
* containerd (Go module build, ``testbin/containerd``) with runc from Debian, CRI config
  for this machine (``restrict_oom_score_adj``: no CAP_SYS_RESOURCE here), the local pause
  image as the sandbox image, every path under the state dir.
* the images imported into containerd's ``k8s.io`` namespace under the references the CRD
  and the chart default to, so ``imagePullPolicy: IfNotPresent``/``Never`` never pull.
* kubelet (``testbin/node``) as ``system:node:<name>`` (client cert from the cluster CA),
  cgroupfs driver under the cgroup ``/tftj-<id>`` (every hierarchy), bound to the bridge IP.
* CoreDNS on the bridge IP (the pods' nameserver) serving ``cluster.local`` from the
  apiserver and NXDOMAIN for everything else: nothing leaves the machine.

``cleanup()`` (called by ``LocalCluster.stop``) kills what is left in the node's cgroups
(containers, shims), unmounts everything under the state dir, removes the bridge, the
cgroups and kubelet's log symlinks. It needs no running process, so it also cleans up
after a crashed run.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TESTBIN_DIR = Path(__file__).resolve().parent
IMAGES_FILE_NAME = "images.json"  # written by testbin/images.sh into the bin dir
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
RUNC = "/usr/sbin/runc"
CGROUP_FS = Path("/sys/fs/cgroup")
CONTAINER_LOGS_DIR = Path("/var/log/containers")  # kubelet's hard-coded symlink dir
KUBERNETES_SERVICE_IP = "10.96.0.1"  # the first address of localcluster.SERVICE_CIDR

NODE_NAME = "real-0"
#: The default StorageClass of a cluster with a real node (local PVs on that node).
STORAGE_CLASS = "tftj-local"
#: Label on the real node; tests select it with a nodeSelector when they must.
REAL_NODE_LABEL = ("testbin.tftj.dev/real-node", "true")
#: The components a real node adds, in start order (stop goes in reverse).
NODE_COMPONENTS = ("containerd", "coredns", "kubelet")
NODE_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "coredns", "kubelet")

Spawn = Callable[[str, list[str]], None]


class NodeError(RuntimeError):
    """The real node could not be set up."""


def node_id(state_dir: Path) -> str:
    """8 hex chars naming this cluster's bridge and cgroups (Linux names are short)."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]


def _run(*cmd: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def missing_prerequisites(bin_dir: Path) -> list[str]:
    """What a real node still needs on this machine (empty when it can start)."""
    missing = [f"{bin_dir / b} (make testbin)" for b in NODE_BINARIES if not (bin_dir / b).exists()]
    images = bin_dir / IMAGES_FILE_NAME
    if not images.is_file():
        missing.append(f"{images} (make images)")
    else:
        missing += [
            f"{image['archive']} (make images)"
            for image in json.loads(images.read_text()).values()
            if not Path(image["archive"]).is_file()
        ]
    if not os.access(RUNC, os.X_OK):
        missing.append(f"{RUNC} (Debian package runc; .ci/system-deps.sh)")
    if not any(Path(d, "bridge").exists() for d in CNI_BIN_DIRS):
        missing.append("CNI plugins (Debian package containernetworking-plugins)")
    if shutil.which("nft") is None:
        missing.append("nft (Debian package nftables)")
    if os.geteuid() != 0:
        missing.append("root (a kubelet manages mounts, cgroups and network namespaces)")
    return missing


def _used_subnets() -> set[ipaddress.IPv4Network]:
    out = _run("ip", "-4", "-o", "addr", "show").stdout
    nets = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.add(ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).network)
    return nets


def pick_subnet(used: set[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first 10.244.N.0/24 that overlaps no address on this machine."""
    for n in range(256):
        net = ipaddress.IPv4Network(f"10.244.{n}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise NodeError("no free 10.244.N.0/24 for the pod bridge")


def _cgroup_hierarchies(every: bool = False) -> list[Path]:
    """Mounted cgroup v1 hierarchies (or else the v2 root), each as its mount directory.

    kubelet checks its cgroup root in every v1 hierarchy, the named systemd one included.
    runc also creates cgroups in the v2 "unified" mount next to v1 ones: ``every`` includes
    it (for cleanup).
    """
    v1, v2 = [], []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, mount = right.split()[0], Path(left.split()[4])
        if fstype == "cgroup":
            v1.append(mount)
        elif fstype == "cgroup2":
            v2.append(mount)
    return v1 + v2 if every else v1 or v2


@dataclass
class RealNode:
    """One kubelet-managed node of a LocalCluster; see the module docstring."""

    state_dir: Path  # the cluster's state dir
    bin_dir: Path
    server: str
    name: str = NODE_NAME

    # ------------------------------------------------------------------ names and paths

    @property
    def id(self) -> str:
        return node_id(self.state_dir)

    @property
    def dir(self) -> Path:
        return self.state_dir / "node"

    @property
    def bridge(self) -> str:
        return f"tftj{self.id}"

    @property
    def cgroup(self) -> str:
        return f"/tftj-{self.id}"

    @property
    def socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    @property
    def net_file(self) -> Path:
        return self.dir / "net.json"

    def network(self) -> tuple[ipaddress.IPv4Network, str]:
        """(pod subnet, bridge/gateway IP) of the running node."""
        data = json.loads(self.net_file.read_text())
        return ipaddress.IPv4Network(data["subnet"]), str(data["gateway"])

    def images(self) -> dict[str, dict[str, str]]:
        data: dict[str, dict[str, str]] = json.loads((self.bin_dir / IMAGES_FILE_NAME).read_text())
        return data

    # ------------------------------------------------------------------ start

    def start(self, spawn: Spawn, admin_kubeconfig: Path) -> None:
        """Bring the node up; ``spawn(name, args)`` starts and records one process.

        Returns once containerd answers and the images are imported; the caller waits
        for the Node to be Ready.
        """
        missing = missing_prerequisites(self.bin_dir)
        if missing:
            raise NodeError("the real node needs: " + "; ".join(missing))
        self.dir.mkdir(parents=True, exist_ok=True)
        subnet = self._make_bridge()
        gateway = str(subnet.network_address + 1)
        self._make_cgroups()
        self._write_cni(subnet)
        self._route_kubernetes_service(gateway)
        spawn("containerd", ["--config", str(self._write_containerd_config())])
        self._wait(self._containerd_up, 60, "containerd to answer")
        self._import_images()
        spawn("coredns", ["-conf", str(self._write_corefile(gateway, admin_kubeconfig))])
        kubeconfig = self._write_kubelet_identity()
        spawn("kubelet", self._kubelet_args(gateway, kubeconfig))

    def _make_bridge(self) -> ipaddress.IPv4Network:
        _run("ip", "link", "del", self.bridge, check=False)  # leftover of a crashed run
        subnet = pick_subnet(_used_subnets())
        gateway = f"{subnet.network_address + 1}/{subnet.prefixlen}"
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", gateway, "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        self.net_file.write_text(
            json.dumps({"subnet": str(subnet), "gateway": gateway.split("/")[0]})
        )
        return subnet

    @property
    def nft_table(self) -> str:
        return f"tftj-{self.id}"

    def _route_kubernetes_service(self, gateway: str) -> None:
        """Let pods reach the apiserver at the ``kubernetes`` Service (10.96.0.1:443, what
        in-cluster clients use), without kube-proxy.

        kube-proxy would own fixed host-wide tables and chains (``kube-proxy``, KUBE-*), so
        two clusters with a real node on one machine would fight over them. Instead one DNAT
        rule in a table of this node's own, matching only packets from this node's bridge,
        sends that one address to the apiserver, which listens on the bridge IP too
        (localcluster binds it to 0.0.0.0 with a real node; DNAT to loopback would be
        dropped by the kubelet's own KUBE-FIREWALL rule). Other ClusterIP Services are not
        routed: nothing in the tests needs them (webhooks are called at their endpoints).
        """
        port = urllib.parse.urlsplit(self.server).port
        _run("nft", "delete", "table", "ip", self.nft_table, check=False)
        rules = f"""
table ip {self.nft_table} {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname "{self.bridge}" ip daddr {KUBERNETES_SERVICE_IP} tcp dport 443 dnat to {gateway}:{port}
    }}
}}
"""
        _run("nft", "-f", "-", input=rules)

    def _make_cgroups(self) -> None:
        # kubelet (cgroupfs driver) wants its cgroup root to exist in every hierarchy.
        for hierarchy in _cgroup_hierarchies():
            path = hierarchy / self.cgroup.lstrip("/")
            path.mkdir(exist_ok=True)
            if hierarchy.name == "cpuset":
                # A new v1 cpuset starts empty and no task may join it until filled in.
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (path / f).write_text((hierarchy / f).read_text())

    def enter_cgroup(self, pid: int) -> None:
        """Move ``pid`` (containerd, kubelet) into the node's cgroups: the shims and
        containers they start inherit them, so cleanup() finds every process there."""
        for hierarchy in _cgroup_hierarchies():
            with contextlib.suppress(OSError):
                (hierarchy / self.cgroup.lstrip("/") / "cgroup.procs").write_text(str(pid))

    def _write_cni(self, subnet: ipaddress.IPv4Network) -> None:
        conf = {
            "cniVersion": "1.0.0",
            "name": "tftj-pods",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    # No NAT: pods talk to each other and to the host, nothing else.
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": str(subnet)}]],
                        # A default route via the bridge: Service IPs (10.96.0.1) are
                        # routed to the host, where realnode DNATs the apiserver's.
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.dir / "cni" / "ipam"),
                    },
                },
                {"type": "loopback"},
            ],
        }
        path = self.dir / "cni" / "net.d" / "10-tftj.conflist"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(conf, indent=2))

    def _write_containerd_config(self) -> Path:
        root = self.dir / "containerd"
        images = self.images()
        cni_dirs = [d for d in CNI_BIN_DIRS if Path(d).is_dir()]
        toml = f"""\
version = 3
root = "{root / "root"}"
state = "{root / "state"}"
# NRI would listen on a fixed host path shared by every containerd.
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = ""

[plugins.'io.containerd.internal.v1.opt']
  path = "{root / "opt"}"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{images["pause"]["ref"]}"

[plugins.'io.containerd.cri.v1.runtime']
  # This machine denies raising oom_score_adj (no CAP_SYS_RESOURCE): without this runc
  # fails every sandbox with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = {json.dumps(cni_dirs)}
    conf_dir = "{self.dir / "cni" / "net.d"}"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""
        path = root / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(toml)
        return path

    def ctr(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """containerd's own client on this node's socket, namespace k8s.io (the CRI's)."""
        return _run(
            str(self.bin_dir / "ctr"),
            "--address",
            str(self.socket),
            "--namespace",
            "k8s.io",
            *args,
            timeout=timeout,
        )

    def _containerd_up(self) -> bool:
        return self.ctr("version", timeout=10).returncode == 0

    def _import_images(self) -> None:
        present = set(self.ctr("images", "list", "--quiet").stdout.split())
        for image in self.images().values():
            if image["ref"] not in present:
                self.ctr("images", "import", "--snapshotter", "overlayfs", image["archive"])

    def _write_corefile(self, gateway: str, admin_kubeconfig: Path) -> Path:
        # Two server blocks: CoreDNS orders plugins at build time (template runs before
        # kubernetes), so the cluster zones and the NXDOMAIN catch-all cannot share one.
        corefile = f"""\
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {gateway}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {admin_kubeconfig}
        pods insecure
    }}
}}
# No forward: names outside the cluster do not exist here (nothing leaves the machine).
.:53 {{
    bind {gateway}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""
        path = self.dir / "Corefile"
        path.write_text(corefile)
        return path

    def _write_kubelet_identity(self) -> Path:
        """A kubeconfig for ``system:node:<name>`` (group system:nodes), the identity the
        Node authorizer and NodeRestriction admission expect from a kubelet."""
        # localcluster owns the PKI helpers (imported here: it imports this module).
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        from localcluster import KeyPair, issue_cert, pem_cert, pem_key, write_kubeconfig

        pki = self.state_dir / "pki"
        ca_pem = (pki / "ca.crt").read_bytes()
        ca_key = load_pem_private_key((pki / "ca.key").read_bytes(), None)
        ca = KeyPair(x509.load_pem_x509_certificate(ca_pem), ca_key)  # type: ignore[arg-type]
        user = f"system:node:{self.name}"
        pair = issue_cert(ca, user, organization="system:nodes", client=True)
        return write_kubeconfig(
            self.dir / "kubelet.kubeconfig",
            self.server,
            ca_pem,
            user,
            client_cert_pem=pem_cert(pair.cert),
            client_key_pem=pem_key(pair.key),
        )

    def _kubelet_args(self, gateway: str, kubeconfig: Path) -> list[str]:
        from localcluster import free_port

        kubelet_dir = self.dir / "kubelet"
        kubelet_dir.mkdir(parents=True, exist_ok=True)
        ca_file = self.state_dir / "pki" / "ca.crt"
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": gateway,
            "port": free_port(),
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "readOnlyPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(ca_file)},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup,
            # This machine has cgroup v1 only; 1.35+ refuses it unless told.
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "clusterDNS": [gateway],
            "clusterDomain": "cluster.local",
            # Pods get only the cluster's search path, not this host's resolvers.
            "resolvConf": "",
            "podLogsDir": str(self.dir / "pod-logs"),
            "volumePluginDir": str(self.dir / "volume-plugins"),
            # A shared development disk: never evict or garbage-collect the test images.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "nodeStatusReportFrequency": "10s",
            "nodeStatusUpdateFrequency": "5s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "5s",
            "maxPods": 110,
        }
        path = kubelet_dir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return [
            f"--config={path}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={kubelet_dir / 'root'}",
            f"--cert-dir={kubelet_dir / 'pki'}",
            f"--hostname-override={self.name}",
            # Loopback is refused as a node IP; the bridge IP is where pods reach us.
            f"--node-ip={gateway}",
            f"--node-labels={REAL_NODE_LABEL[0]}={REAL_NODE_LABEL[1]}",
            "--v=1",
        ]

    def storage_manifests(self, count: int = 12, size: str = "2Gi") -> list[dict[str, Any]]:
        """A default StorageClass ``STORAGE_CLASS`` and ``count`` local PersistentVolumes on
        this node (directories under the state dir), so ``spec.storage.size`` binds a real
        volume. No provisioner: the PV controller binds a claim to a free static PV;
        WaitForFirstConsumer binds it once the pod is scheduled (to this node)."""
        objs: list[dict[str, Any]] = [
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "WaitForFirstConsumer",
                "reclaimPolicy": "Retain",
            }
        ]
        for i in range(count):
            path = self.dir / "volumes" / f"pv-{i}"
            path.mkdir(parents=True, exist_ok=True)
            # Worker pods run as uid 1000 without privileges; the directory is theirs to use.
            path.chmod(0o777)
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": f"{self.name}-pv-{i}"},
                    "spec": {
                        "capacity": {"storage": size},
                        # Every worker of a job is on this one node: ReadWriteMany holds.
                        "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": STORAGE_CLASS,
                        "local": {"path": str(path)},
                        "nodeAffinity": {
                            "required": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {
                                                "key": "kubernetes.io/hostname",
                                                "operator": "In",
                                                "values": [self.name],
                                            }
                                        ]
                                    }
                                ]
                            }
                        },
                    },
                }
            )
        return objs

    @staticmethod
    def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if predicate():
                    return
            time.sleep(0.2)
        raise NodeError(f"timed out after {timeout:.0f}s waiting for {what}")

    # ------------------------------------------------------------------ cleanup

    def cleanup(self) -> None:
        """Remove every trace of the node; safe to call when nothing of it exists."""
        self._kill_cgroup_processes()
        self._unmount_under(self.dir)
        _run("ip", "link", "del", self.bridge, check=False)
        _run("nft", "delete", "table", "ip", self.nft_table, check=False)
        self._remove_cgroups()
        with contextlib.suppress(OSError):
            for link in CONTAINER_LOGS_DIR.iterdir():
                if link.is_symlink() and str(os.readlink(link)).startswith(str(self.dir)):
                    link.unlink()

    def _cgroup_dirs(self) -> list[Path]:
        """Every cgroup directory of the node, deepest first."""
        found = []
        for hierarchy in _cgroup_hierarchies(every=True):
            top = hierarchy / self.cgroup.lstrip("/")
            if top.is_dir():
                found += [Path(d) for d, _, _ in os.walk(top)]
        return sorted(found, key=lambda p: len(p.parts), reverse=True)

    def _kill_cgroup_processes(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pids = set()
            for d in self._cgroup_dirs():
                with contextlib.suppress(OSError):
                    pids |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            pids.discard(os.getpid())
            if not pids or time.monotonic() > deadline:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            # Our own children (containerd, kubelet) stay zombies until reaped.
            for pid in pids:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)

    def _remove_cgroups(self) -> None:
        for d in self._cgroup_dirs():
            with contextlib.suppress(OSError):
                d.rmdir()

    @staticmethod
    def _unmount_under(root: Path) -> None:
        """Unmount (lazily, deepest first) every mount point below ``root``: overlay
        rootfs, shm, network namespaces, kubelet's volume tmpfs."""
        prefix = str(root.resolve()) + "/"
        points = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
        for point in sorted(set(points), key=len, reverse=True):
            _run("umount", "-l", point, check=False)


def pod_network_of(state_dir: Path) -> str | None:
    """The pod subnet of the real node of the cluster in ``state_dir``, if it has one."""
    try:
        return str(json.loads((state_dir / "node" / "net.json").read_text())["subnet"])
    except (OSError, ValueError, KeyError):
        return None


def node_components(real_node: bool) -> Sequence[str]:
    return NODE_COMPONENTS if real_node else ()
