"""The generated CRD in a real kube-apiserver: it installs, defaults, documents, and its CEL rules
reject exactly what tftj's Python rules reject (server-side dry runs, no operator needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusterkit import Kubectl

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "unit"))

from cases import CASES, Case, manifest, merged  # noqa: E402
from test_bounds import BAD  # noqa: E402
from tftj.api.cel import CEL_RULES  # noqa: E402

CRD = REPO / "crds" / "tftrainingjobs.tftj.dev.yaml"
CEL_CASES = [
    case
    for case in CASES
    if any(
        r.rule == case.rule and case.path.startswith(r.reported_path.removesuffix("[0]"))
        for r in CEL_RULES
    )
]


@pytest.fixture(scope="module")
def crd_installed(cluster: Any) -> None:
    admin = Kubectl.for_cluster(cluster)
    admin("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    admin(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/tftrainingjobs.tftj.dev",
    )


def dry_run(kubectl: Kubectl, manifest: dict[str, Any]) -> Any:
    return kubectl(
        "create", "--dry-run=server", "-o", "json", "-f", "-", input=manifest, check=False
    )


@pytest.mark.usefixtures("crd_installed")
def test_examples_are_accepted_and_stored_as_written(kubectl: Kubectl) -> None:
    # No structural defaults: the operator resolves them and shows them in status (docs/api.md).
    for path in sorted((REPO / "examples").glob("*.yaml")):
        written = yaml.safe_load(path.read_text())
        result = dry_run(kubectl, written)
        assert result.returncode == 0, (path.name, result.stderr)
        assert json.loads(result.stdout)["spec"] == written["spec"], path.name


@pytest.mark.usefixtures("crd_installed")
@pytest.mark.parametrize("case", CEL_CASES, ids=lambda c: c.id)
def test_apiserver_rejects_what_python_rejects(kubectl: Kubectl, case: Case) -> None:
    bad = dry_run(kubectl, case.manifest("bad"))
    assert bad.returncode != 0, f"apiserver accepted {case.id}"
    assert case.path.split("[")[0] in bad.stderr, bad.stderr
    good = dry_run(kubectl, case.manifest("good"))
    assert good.returncode == 0, good.stderr


@pytest.mark.usefixtures("crd_installed")
def test_kubectl_explain_shows_unit_range_and_default(kubectl: Kubectl) -> None:
    out = kubectl("explain", "tftj.spec.training.batchSize").stdout
    assert "Unit: examples" in out and "Range: >= 1 and <= 1048576" in out and "Default: 32" in out


@pytest.mark.usefixtures("crd_installed")
def test_printer_columns(kubectl: Kubectl) -> None:
    kubectl.apply(yaml.safe_load((REPO / "examples/minimal.yaml").read_text()))
    header = kubectl("get", "tftj").stdout.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "WORKERS", "GPUS", "EPOCH", "LOSS", "AGE"]


def _spec(patch: dict[str, Any]) -> dict[str, Any]:
    return merged({"data": {"format": "synthetic"}}, patch)


@pytest.mark.usefixtures("crd_installed")
@pytest.mark.parametrize(("patch", "path", "says"), BAD, ids=[b[1] for b in BAD])
def test_apiserver_refuses_values_the_trainer_or_kubernetes_cannot_use(
    kubectl: Kubectl, patch: dict[str, Any], path: str, says: str
) -> None:
    # Bounds of list items, map keys and string formats, as in tests/unit/test_bounds.py.
    result = dry_run(kubectl, manifest(_spec(patch), name="bounds"))
    assert result.returncode != 0, f"apiserver accepted {patch}"
    assert path in result.stderr, result.stderr
    assert "evaluating rule" not in result.stderr, result.stderr


# Each is invalid in one field that a CEL rule also reads: the user must see that field's own
# error and nothing from the rule's evaluation.
OUT_OF_RANGE_OPERANDS: list[tuple[dict[str, Any], str]] = [
    ({"workers": {"replicas": 0}}, "spec.workers.replicas"),
    ({"workers": {"replicas": 2**62}}, "spec.workers.replicas"),
    ({"workers": {"gpusPerWorker": -1}}, "spec.workers.gpusPerWorker"),
    ({"training": {"batchSize": 0}}, "spec.training.batchSize"),
    ({"training": {"epochs": 0}}, "spec.training.epochs"),
    (
        {"training": {"learningRateScaling": {"rule": "linear", "referenceBatchSize": 0}}},
        "spec.training.learningRateScaling.referenceBatchSize",
    ),
    ({"model": {"outputUnits": 0}}, "spec.model.outputUnits"),
    ({"metrics": {"port": 0}}, "spec.metrics.port"),
]


@pytest.mark.usefixtures("crd_installed")
@pytest.mark.parametrize(
    ("patch", "path"), OUT_OF_RANGE_OPERANDS, ids=[p for _, p in OUT_OF_RANGE_OPERANDS]
)
def test_an_invalid_operand_gives_only_its_own_message(
    kubectl: Kubectl, patch: dict[str, Any], path: str
) -> None:
    result = dry_run(kubectl, manifest(_spec(patch), name="operands"))
    assert result.returncode != 0
    assert path in result.stderr, result.stderr
    for noise in ("evaluating rule", "division by zero", "modulus", "overflow", "no such key"):
        assert noise not in result.stderr, result.stderr
