"""A real Prometheus on the host that finds the worker pods through the Kubernetes API.

What the Prometheus Operator does with the chart's PodMonitor, done without it: translate a
rendered PodMonitor into scrape configs (``kubernetes_sd_configs`` role pod, plus the
relabeling the Prometheus Operator generates: keep the pods its selector matches, drop
finished pods, keep the named container port, add namespace/pod/container), give them a
ServiceAccount token with the read access such a Prometheus needs, and run the server
(testbin/build.sh builds it with kubernetes_sd; Debian's package has none) as a host process.
The host reaches pod IPs over the real node's bridge, so targets are the pods' own addresses.

Imported by tests/node (its conftest puts ``testbin/`` on ``sys.path``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterkit import Kubectl, wait_for
from localcluster import free_port

#: The Prometheus Operator's generated job label for a PodMonitor endpoint.
JOB_NAME = "podMonitor/{namespace}/{name}/{index}"


def meta_label(key: str) -> str:
    """A Kubernetes label key as it appears in a ``__meta_kubernetes_pod_label_*`` name."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def pod_monitor_scrape_configs(
    monitor: Mapping[str, Any], kubernetes: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The scrape configs the Prometheus Operator generates for ``monitor`` (a PodMonitor),
    one per ``podMetricsEndpoints`` entry. ``kubernetes`` holds the API server URL and
    credentials of each ``kubernetes_sd_configs`` entry. Only the PodMonitor fields the
    chart uses are translated; any other selector or endpoint field raises ValueError
    rather than being silently ignored."""
    meta, spec = monitor["metadata"], monitor["spec"]
    selector = spec.get("selector") or {}
    if set(selector) - {"matchLabels"}:
        raise ValueError(f"PodMonitor selector: only matchLabels is supported, got {selector}")
    namespaces = spec.get("namespaceSelector") or {}
    sd: dict[str, Any] = {"role": "pod", **kubernetes}
    if not namespaces.get("any"):
        sd["namespaces"] = {"names": namespaces.get("matchNames") or [meta["namespace"]]}
    keep_selected = [
        {
            "action": "keep",
            "source_labels": [
                f"__meta_kubernetes_pod_label_{meta_label(key)}",
                f"__meta_kubernetes_pod_labelpresent_{meta_label(key)}",
            ],
            "regex": f"({value});true",
        }
        for key, value in sorted((selector.get("matchLabels") or {}).items())
    ]
    configs = []
    for index, endpoint in enumerate(spec.get("podMetricsEndpoints") or []):
        unsupported = set(endpoint) - {"port", "path", "interval", "honorLabels"}
        if unsupported or "port" not in endpoint:
            raise ValueError(
                f"PodMonitor podMetricsEndpoints[{index}]: needs `port` (a port name) and "
                f"only port/path/interval/honorLabels are supported, got {sorted(endpoint)}"
            )
        job = JOB_NAME.format(namespace=meta["namespace"], name=meta["name"], index=index)
        config: dict[str, Any] = {
            "job_name": job,
            "honor_labels": bool(endpoint.get("honorLabels", False)),
            "metrics_path": endpoint.get("path", "/metrics"),
            "kubernetes_sd_configs": [sd],
            "relabel_configs": [
                # Finished pods keep their IP in the API but serve nothing.
                {
                    "action": "drop",
                    "source_labels": ["__meta_kubernetes_pod_phase"],
                    "regex": "(Failed|Succeeded)",
                },
                *keep_selected,
                {
                    "action": "keep",
                    "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                    "regex": endpoint["port"],
                },
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {
                    "source_labels": ["__meta_kubernetes_pod_container_name"],
                    "target_label": "container",
                },
                {"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"},
                {"target_label": "endpoint", "replacement": endpoint["port"]},
            ],
        }
        if "interval" in endpoint:
            config["scrape_interval"] = endpoint["interval"]
        configs.append(config)
    return configs


def pod_reader_token(admin: Kubectl, namespace: str, name: str = "prometheus") -> str:
    """A token of ServiceAccount ``name`` in ``namespace`` that may read pods cluster-wide:
    the RBAC a Prometheus with pod discovery in every namespace gets. The ClusterRole and
    its binding are named ``<name>-<namespace>``; ``revoke_pod_reader`` deletes them."""
    cluster_name = f"{name}-{namespace}"
    admin.with_namespace(None).apply(
        "\n---\n".join(
            json.dumps(obj)
            for obj in (
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": namespace},
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": cluster_name},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "resources": ["pods"],
                            "verbs": ["get", "list", "watch"],
                        }
                    ],
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": cluster_name},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": cluster_name,
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
                },
            )
        )
    )
    token = admin("create", "token", name, "-n", namespace, "--duration=1h").stdout.strip()
    if not token:
        raise RuntimeError(f"kubectl create token {name} -n {namespace} printed no token")
    return token


def revoke_pod_reader(admin: Kubectl, namespace: str, name: str = "prometheus") -> None:
    cluster_name = f"{name}-{namespace}"
    admin.with_namespace(None)(
        "delete",
        f"clusterrolebinding/{cluster_name}",
        f"clusterrole/{cluster_name}",
        "--ignore-not-found",
        check=False,
    )


@dataclass
class PrometheusServer:
    """One Prometheus server process on loopback with its own TSDB under ``workdir``."""

    binary: Path
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "prometheus.log"

    def start(self, config: Mapping[str, Any], timeout: float = 60) -> PrometheusServer:
        """Write ``config`` (JSON is YAML), start the server, wait until it is ready."""
        if not self.binary.is_file():
            raise FileNotFoundError(
                f"{self.binary} missing: build it with `bash testbin/build.sh` (make testbin)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(json.dumps(config, indent=1))
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._ready, timeout, message=lambda: f"Prometheus ready:\n{self.logs()}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"Prometheus exited {self.process.returncode}:\n{self.logs()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=3) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data``; a 4xx (a bad query) raises with its error."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                body = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{url}: {exc.code} {exc.read().decode()}") from exc
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query: ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
        return list(self.api("query", query=expr)["result"])

    def active_targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])

    def logs(self, lines: int = 40) -> str:
        if not self.log_file.is_file():
            return "(no Prometheus log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir / "tsdb", ignore_errors=True)
