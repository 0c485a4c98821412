"""The Helm chart (charts/tftj) with the real helm and a real kube-apiserver: it lints, renders
with default and overridden values, and what it renders is accepted by the apiserver (server-side
dry run after the chart's CRD is installed for real), grants exactly the one RBAC rules file,
runs under Pod Security "restricted", and registers a webhook that fails closed, quickly."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusterkit import Kubectl, condition, wait_for
from cryptography import x509
from localcluster import child_env
from promoperator import monitoring_crds

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tftj"
RBAC_RULES = CHART / "files" / "operator-rbac-rules.yaml"
CRD_FILE = REPO / "crds" / "tftrainingjobs.tftj.dev.yaml"
RELEASE = "tftj"
OPERATOR = f"{RELEASE}-operator"  # tftj.fullname
#: Kinds the chart renders for the Prometheus operator: their CRDs come from its Go module.
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
CLUSTER_SCOPED_KINDS = {
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ValidatingWebhookConfiguration",
}
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"


def helm_binary() -> Path:
    bin_dir = Path(os.environ.get("TFTJ_TESTBIN_BIN") or REPO / "testbin" / "bin")
    helm = bin_dir / "helm"
    if not os.access(helm, os.X_OK):
        pytest.fail(
            f"helm not found at {helm}: build it with `make testbin` (cached after the first build)",
            pytrace=False,
        )
    return helm


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, timeout=120, env=child_env()
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"`helm {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr}")
    return proc


def server_version(admin: Kubectl) -> str:
    # helm built from Go modules defaults to Kubernetes v1.20 (below the chart's kubeVersion):
    # render for the apiserver the manifests go to, as `helm install` would.
    return str(admin.json("version")["serverVersion"]["gitVersion"])


def render(
    tmp_path: Path, namespace: str, kube_version: str, values: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    args = ["template", RELEASE, str(CHART), "-n", namespace, "--include-crds"]
    args += ["--kube-version", kube_version]
    if values is not None:
        values_file = tmp_path / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        args += ["-f", str(values_file)]
    docs = [d for d in yaml.safe_load_all(helm(*args).stdout) if d]
    assert docs, "helm template rendered nothing"
    return docs


def by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs).get(kind, [])
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def install_crds(admin: Kubectl, crds: list[dict[str, Any]]) -> None:
    for crd in crds:
        admin("apply", "--server-side", "--force-conflicts", "-f", "-", input=crd)
    for crd in crds:
        # Polled, not `kubectl wait`: that fails outright ("accessor error: <nil>") when it
        # reads the CRD before the apiserver wrote any condition (seen under load).
        established(admin, crd["metadata"]["name"])


def established(admin: Kubectl, crd: str) -> None:
    def done() -> bool:
        return (condition(admin.get("crd", crd), "Established") or {}).get("status") == "True"

    wait_for(done, 60, message=f"CRD {crd} Established")


def install_crds_and_dry_run(admin: Kubectl, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply the chart's CRDs for real (the dry run of anything else may need them), and the
    prometheus-operator's when the chart renders monitoring objects, then server-side dry-run
    every other object with strict field validation. Returns the apiserver's view of them."""
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    if MONITORING_KINDS & {d["kind"] for d in docs}:
        _, files = monitoring_crds()
        crds += [yaml.safe_load(path.read_text()) for path in files]
    install_crds(admin, crds)
    sent = [d for d in docs if d["kind"] != "CustomResourceDefinition"]
    # Every namespaced object names its namespace (the release's, or a watched one for the
    # RoleBindings): the chart never relies on kubectl's default namespace.
    for doc in sent:
        if doc["kind"] not in CLUSTER_SCOPED_KINDS:
            assert doc["metadata"].get("namespace"), f"{doc['kind']} without a namespace"
    result = admin(
        "apply",
        "--dry-run=server",
        "--validate=strict",  # an unknown field is an error, not silently pruned
        "-o",
        "json",
        "-f",
        "-",
        input={"apiVersion": "v1", "kind": "List", "items": sent},
    )
    assert "would violate PodSecurity" not in result.stderr, result.stderr
    accepted = json.loads(result.stdout)
    items: list[dict[str, Any]] = (
        accepted["items"] if accepted.get("kind") == "List" else [accepted]
    )
    assert sorted((i["kind"], i["metadata"]["name"]) for i in items) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in sent
    )
    return items


def accepted_unchanged(accepted: list[dict[str, Any]], rendered: dict[str, Any]) -> None:
    """The apiserver kept the object's spec as rendered: nothing pruned or rewritten."""
    (stored,) = [
        a
        for a in accepted
        if (a["kind"], a["metadata"]["name"]) == (rendered["kind"], rendered["metadata"]["name"])
    ]
    assert stored["spec"] == rendered["spec"], (stored["spec"], rendered["spec"])


def rbac_rules_file() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load(RBAC_RULES.read_text())
    return rules


def assert_restricted_pod(admin: Kubectl, namespace: str, docs: list[dict[str, Any]]) -> None:
    """Pod Security admission enforces on Pods, not on Deployments: create the Deployment's pod
    (server dry run) in the namespace labelled enforce=restricted, and check that the same pod
    without its securityContext is refused there (so enforcement is really on). The pod's
    ServiceAccount must exist for that: the chart's one is created for real (the test's
    namespace is thrown away)."""
    template = one(docs, "Deployment")["spec"]["template"]
    admin.with_namespace(namespace).apply(one(docs, "ServiceAccount"))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-pod-security", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }
    kubectl = admin.with_namespace(namespace)
    ok = kubectl("create", "--dry-run=server", "-f", "-", input=pod, check=False)
    assert ok.returncode == 0, ok.stderr
    insecure = json.loads(json.dumps(pod))
    insecure["spec"].pop("securityContext")
    for container in insecure["spec"]["containers"]:
        container.pop("securityContext", None)
    refused = kubectl("create", "--dry-run=server", "-f", "-", input=insecure, check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr


@pytest.fixture
def restricted(kubectl: Kubectl, namespace: str) -> str:
    """The test's namespace, with Pod Security "restricted" enforced."""
    kubectl("label", "namespace", namespace, RESTRICTED, "--overwrite")
    return namespace


@pytest.fixture
def admin(kubectl: Kubectl) -> Kubectl:
    return kubectl.with_namespace(None)


# --------------------------------------------------------------------------------------- lint


def test_lint_strict_with_default_and_overridden_values(tmp_path: Path) -> None:
    helm("lint", "--strict", str(CHART))
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "watchNamespaces": ["team-a", "team-b"],
                "webhook": {"enabled": False},
                "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
            }
        )
    )
    helm("lint", "--strict", str(CHART), "-f", str(values))


def test_chart_ships_the_generated_crd() -> None:
    shipped = helm("show", "crds", str(CHART)).stdout
    assert yaml.safe_load(shipped) == yaml.safe_load(CRD_FILE.read_text()), (
        "charts/tftj/crds differs from crds/: it must be the generated CRD (a symlink to it)"
    )


def test_existing_secret_without_ca_bundle_is_refused(tmp_path: Path, admin: Kubectl) -> None:
    result = helm(
        *("template", RELEASE, str(CHART), "--kube-version", server_version(admin)),
        *("--set", "webhook.existingSecret=my-cert"),
        check=False,
    )
    assert result.returncode != 0
    assert "webhook.caBundle is required with webhook.existingSecret" in result.stderr


# ------------------------------------------------------------------------ defaults, all namespaces


def test_default_values_are_accepted_by_the_apiserver(
    tmp_path: Path, admin: Kubectl, restricted: str
) -> None:
    docs = render(tmp_path, restricted, server_version(admin))
    kinds = by_kind(docs)
    assert sorted(kinds) == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "ServiceAccount",
            "ValidatingWebhookConfiguration",
        ]
    )
    items = install_crds_and_dry_run(admin, docs)

    # RBAC: exactly the one rules file, as the chart renders it and as the apiserver stores it.
    role = one(docs, "ClusterRole")
    assert role["rules"] == rbac_rules_file()
    stored = next(i for i in items if i["kind"] == "ClusterRole")
    assert stored["rules"] == rbac_rules_file()
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": OPERATOR, "namespace": restricted}
    ]

    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    # Highly available: two replicas (one leads by Lease, both serve the webhook), at most one
    # evicted at a time, preferably on different nodes, Ready when the webhook answers.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["serviceAccountName"] == OPERATOR
    # Service link variables (TFTJ_OPERATOR_WEBHOOK_PORT=tcp://...) would shadow its settings.
    assert pod["enableServiceLinks"] is False
    (container,) = pod["containers"]
    assert "--leader-elect" in container["args"]
    assert {e["name"] for e in container["env"]} >= {"POD_NAME", "POD_NAMESPACE"}
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "webhook",
        "scheme": "HTTPS",
    }
    assert container["image"] == "tftj/operator:0.1.0"
    assert "--all-namespaces" in container["args"]
    assert_restricted_pod(admin, restricted, docs)

    # The webhook: only TFTrainingJobs, fails closed, answers quickly, served by the operator
    # through the rendered Service with a certificate the caBundle verifies.
    vwc = one(docs, "ValidatingWebhookConfiguration")
    (hook,) = vwc["webhooks"]
    assert hook["rules"] == [
        {
            "apiGroups": ["tftj.dev"],
            "apiVersions": ["v1alpha1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["tftrainingjobs"],
            "scope": "Namespaced",
        }
    ]
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "None"
    assert 1 <= hook["timeoutSeconds"] <= 10
    assert "namespaceSelector" not in hook
    target = hook["clientConfig"]["service"]
    service = one(docs, "Service")
    assert (target["name"], target["namespace"]) == (service["metadata"]["name"], restricted)
    assert target["path"] == "/validate-tftrainingjob"
    port = next(p for p in service["spec"]["ports"] if p["port"] == target["port"])
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    assert service["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    host = f"{target['name']}.{restricted}.svc"
    assert f"--webhook-host={host}" in container["args"]

    secret = one(docs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    mounted = next(v for v in pod["volumes"] if v.get("secret"))
    assert mounted["secret"]["secretName"] == secret["metadata"]["name"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(hook["clientConfig"]["caBundle"]))
    assert base64.b64decode(secret["data"]["ca.crt"]) == base64.b64decode(
        hook["clientConfig"]["caBundle"]
    )
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert host in names.get_values_for_type(x509.DNSName)


def test_without_leader_election_one_replica_and_never_two_at_once(
    tmp_path: Path, admin: Kubectl
) -> None:
    refused = helm(
        "template",
        RELEASE,
        str(CHART),
        "--kube-version",
        server_version(admin),
        "--set",
        "leaderElection.enabled=false",
        check=False,
    )
    assert refused.returncode != 0
    assert "operator.replicas > 1 needs leaderElection.enabled" in refused.stderr
    values = {"leaderElection": {"enabled": False}, "operator": {"replicas": 1}}
    docs = render(tmp_path, "tftj-system", server_version(admin), values)
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert "PodDisruptionBudget" not in by_kind(docs)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--leader-elect" not in container["args"]


# ------------------------------------------------------------------------------ overridden values


def test_overridden_values_are_accepted_by_the_apiserver(
    tmp_path: Path, admin: Kubectl, restricted: str
) -> None:
    values = {
        "image": {"repository": "tftj-test/operator", "tag": "9.9.9", "pullPolicy": "Never"},
        "imagePullSecrets": [{"name": "pull-secret"}],
        "watchNamespaces": [restricted],
        "webhook": {"enabled": False},
        "metrics": {
            "port": 9090,
            "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}},
        },
        "operator": {"workers": 8, "extraArgs": ["--no-progress"], "logFormat": "plain"},
    }
    docs = render(tmp_path, restricted, server_version(admin), values)
    kinds = by_kind(docs)
    assert "ValidatingWebhookConfiguration" not in kinds and "Secret" not in kinds
    assert "ClusterRoleBinding" not in kinds

    # The ServiceMonitor renders and the apiserver accepts it, as written, against the
    # prometheus-operator's own CRD.
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s"}
    ]
    accepted_unchanged(install_crds_and_dry_run(admin, docs), monitor)

    role = one(docs, "ClusterRole")
    assert role["rules"] == rbac_rules_file()
    (binding,) = kinds["RoleBinding"]
    assert binding["metadata"]["namespace"] == restricted
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    for role_like in kinds.get("Role", []):
        assert role_like["rules"] == rbac_rules_file()

    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "tftj-test/operator:9.9.9"
    # No webhook: readiness is the process's health.
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["imagePullPolicy"] == "Never"
    assert pod["imagePullSecrets"] == [{"name": "pull-secret"}]
    args = container["args"]
    assert f"--namespace={restricted}" in args and "--all-namespaces" not in args
    assert not any(a.startswith(("--webhook", "--cert-dir")) for a in args)
    assert {"--metrics-port=9090", "--workers=8", "--no-progress", "--log-format=plain"} <= set(
        args
    )
    assert not any(v.get("secret") for v in pod["volumes"])
    assert [p["name"] for p in one(docs, "Service")["spec"]["ports"]] == ["metrics"]
    assert_restricted_pod(admin, restricted, docs)


def test_webhook_is_limited_to_watched_namespaces(
    tmp_path: Path, admin: Kubectl, restricted: str
) -> None:
    # Both namespaces exist: the dry run of a RoleBinding needs its namespace.
    values = {"watchNamespaces": [restricted, "default"], "webhook": {"timeoutSeconds": 3}}
    docs = render(tmp_path, restricted, server_version(admin), values)
    install_crds_and_dry_run(admin, docs)
    (hook,) = one(docs, "ValidatingWebhookConfiguration")["webhooks"]
    assert hook["timeoutSeconds"] == 3 and hook["failurePolicy"] == "Fail"
    assert hook["namespaceSelector"] == {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "In",
                "values": [restricted, "default"],
            }
        ]
    }
    assert sorted(b["metadata"]["namespace"] for b in by_kind(docs)["RoleBinding"]) == sorted(
        [restricted, "default"]
    )


# ------------------------------------------------------------------------- install and upgrade


def test_install_then_upgrade_keeps_the_webhook_certificate(admin: Kubectl, namespace: str) -> None:
    """A real `helm install` / `helm upgrade` (the chart's `lookup` sees the cluster): the
    generated CA survives an upgrade, so the apiserver's caBundle keeps matching the mounted
    certificate. The webhook is limited to this test's namespace (nobody else's TFTrainingJobs
    wait for an operator that is not running), and the release is uninstalled afterwards."""
    release = f"chart-{namespace[-6:]}"
    common = ["-n", namespace, f"--kubeconfig={admin.kubeconfig}", "--wait=false"]
    values = ["--set-json", f'watchNamespaces=["{namespace}"]']
    try:
        helm("install", release, str(CHART), *common, *values)
        secret_name = f"{release}-operator-webhook-cert"
        first = admin.with_namespace(namespace).get("secret", secret_name)["data"]
        vwc = admin.get("validatingwebhookconfiguration", f"{release}-operator")
        assert vwc["webhooks"][0]["clientConfig"]["caBundle"] == first["ca.crt"]

        helm("upgrade", release, str(CHART), *common, *values, "--set", "operator.workers=2")
        upgraded = admin.with_namespace(namespace).get("deployment", f"{release}-operator")
        assert "--workers=2" in upgraded["spec"]["template"]["spec"]["containers"][0]["args"]
        second = admin.with_namespace(namespace).get("secret", secret_name)["data"]
        assert second == first, "helm upgrade rotated the webhook certificate"
        vwc = admin.get("validatingwebhookconfiguration", f"{release}-operator")
        assert vwc["webhooks"][0]["clientConfig"]["caBundle"] == first["ca.crt"]

        helm("uninstall", release, *common[:3])
        left = admin("get", "validatingwebhookconfiguration,clusterrole", "-o", "name")
        assert f"{release}-operator" not in left.stdout, "uninstall left cluster-scoped objects"
    finally:
        helm("uninstall", release, *common[:3], check=False)


# ------------------------------------------------------------------------- monitoring bundle


def test_monitoring_bundle_renders_only_when_enabled(
    tmp_path: Path, admin: Kubectl, restricted: str
) -> None:
    defaults = by_kind(render(tmp_path, restricted, server_version(admin)))
    assert not {"PodMonitor", "PrometheusRule", "ConfigMap"} & set(defaults)

    values = {
        "watchNamespaces": [restricted],
        "metrics": {
            "podMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}},
            "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
        },
        "grafana": {"dashboards": {"enabled": True, "annotations": {"grafana_folder": "ML"}}},
    }
    docs = render(tmp_path, restricted, server_version(admin), values)

    pod_monitor = one(docs, "PodMonitor")
    assert pod_monitor["metadata"]["labels"]["release"] == "prom"
    assert pod_monitor["spec"]["namespaceSelector"] == {"matchNames": [restricted]}
    assert pod_monitor["spec"]["selector"] == {
        "matchLabels": {
            "tftj.dev/role": "worker",
            "app.kubernetes.io/managed-by": "tftj-operator",
        }
    }
    assert pod_monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "honorLabels": True}
    ]
    rule = one(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    dashboard = one(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "ML"}
    assert json.loads(dashboard["data"]["tftj.json"]) == json.loads(
        (CHART / "files" / "grafana-dashboard.json").read_text()
    )
    # Valid against the prometheus-operator's CRDs in the real apiserver, nothing pruned.
    accepted = install_crds_and_dry_run(admin, docs)
    accepted_unchanged(accepted, pod_monitor)
    accepted_unchanged(accepted, rule)


def test_worker_pods_match_the_pod_monitor(tmp_path: Path, admin: Kubectl) -> None:
    """The PodMonitor's selector and port name are those of the worker pods the operator builds."""
    from tftj.api.models import TFTrainingJobSpec
    from tftj.api.resolve import resolve
    from tftj.operator.children import worker_pod_labels

    values = {"metrics": {"podMonitor": {"enabled": True}}}
    monitor = one(render(tmp_path, "default", server_version(admin), values), "PodMonitor")
    resolved = resolve(
        TFTrainingJobSpec.model_validate({"data": {"format": "synthetic"}}), name="j"
    )
    labels = worker_pod_labels("j", 0, resolved)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
