"""The checked-in CRD and parameter reference are exactly what the schema generates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from tftj.api.crd import crd_yaml
from tftj.api.docs import parameters_markdown

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "tftrainingjobs.tftj.dev.yaml"
DOCS_FILE = REPO / "docs" / "parameters.md"
STALE = "{} is out of date with operator/tftj/api; run `make generate` and commit the result"


def test_crd_file_is_up_to_date() -> None:
    assert CRD_FILE.read_text() == crd_yaml(), STALE.format("crds/tftrainingjobs.tftj.dev.yaml")


def test_parameters_doc_is_up_to_date() -> None:
    assert DOCS_FILE.read_text() == parameters_markdown(), STALE.format("docs/parameters.md")


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key in ("properties",):
            for name, sub in (node.get(key) or {}).items():
                out += _walk(sub, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                out += _walk(node[key], f"{path}[{key}]")
    return out


def _crd() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return doc


def test_crd_schema_is_structural() -> None:
    schema = _crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = CRD_FILE.read_text()
    for forbidden in ("$ref", "anyOf", "allOf", "oneOf", "$defs", "const:"):
        assert forbidden not in text
    for path, node in _walk(schema):
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        if path.startswith(".spec") and path.count(".") > 1 and "[" not in path.split(".")[-1]:
            assert node.get("description"), f"{path} has no description"


def test_crd_documents_unit_range_and_default_in_descriptions() -> None:
    schema = _crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    batch = schema["properties"]["spec"]["properties"]["training"]["properties"]["batchSize"]
    assert "default" not in batch and batch["minimum"] == 1  # documented, resolved by tftj
    assert "Unit: examples. Range: >= 1 and <= 1048576. Default: 32." in batch["description"]
    lr = schema["properties"]["spec"]["properties"]["training"]["properties"]["learningRate"]
    assert lr["minimum"] == 0 and lr["exclusiveMinimum"] is True


def test_crd_names_columns_and_status() -> None:
    spec = _crd()["spec"]
    assert spec["names"]["shortNames"] == ["tftj"] and "tftj" in spec["names"]["categories"]
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Phase": ".status.phase",
        "Workers": ".status.workers",
        "GPUs": ".status.gpus",
        "Epoch": ".status.progress.epoch",
        "Loss": ".status.progress.loss",
        "Age": ".metadata.creationTimestamp",
    }
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["properties"]["resolvedParameters"]["x-kubernetes-preserve-unknown-fields"]


def test_lists_cel_iterates_are_bounded() -> None:
    schema = _crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        if path.startswith(".spec") and node.get("type") == "array":
            assert "maxItems" in node, f"{path}: unbounded list (CEL cost estimate)"
