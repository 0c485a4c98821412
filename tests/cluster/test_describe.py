"""`kubectl describe tftrainingjob` on the shipped digits example, read as a person would: every
resolved value is there, once, and nothing printed is empty. (Its length is printed, not
asserted: it depends on the phase, the conditions and the events.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from clusterkit import Kubectl, wait_for
from devoperator import OperatorProcess
from tftj.api.resolve import resolved_from_dict

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits-mlp.yaml"
Node = dict[str, Any]  # label -> list of child nodes; scalar lines under "" ; values under "="


def smart_label(field: str) -> str:
    """kubectl's smartLabelFor: camelCase -> Title Words; names with digits stay as they are."""
    if re.search(r"[^A-Za-z-]", field):
        return field
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", field)
    return " ".join("API" if w.upper() == "API" else w[:1].upper() + w[1:] for w in words)


def parse_describe(text: str) -> Node:
    """The indented `Label:  value` tree kubectl prints for a custom resource."""
    root: Node = {}
    stack: list[tuple[int, Node]] = [(-1, root)]
    for line in text.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        body = line.strip()
        match = re.fullmatch(r"([A-Za-z][A-Za-z0-9 .\-/]*):(?:\s+(.*))?", body)
        if match is None:
            parent.setdefault("", []).append(body)  # an item of a list of scalars
        elif match.group(2) is None:
            child: Node = {}
            parent.setdefault(match.group(1), []).append(child)
            stack.append((indent, child))
        else:
            parent.setdefault(match.group(1), []).append({"=": match.group(2)})
    return root


def same(printed: str, value: Any) -> bool:
    """Go's %v of a JSON value against the Python value it came from."""
    if isinstance(value, bool):
        return printed == str(value).lower()
    if isinstance(value, int | float):
        try:
            return float(printed) == float(value)
        except ValueError:
            return False
    return printed == str(value)


def lookup(tree: Node, path: list[str]) -> list[Node]:
    nodes = [tree]
    for key in path:
        nodes = [child for node in nodes for child in node.get(smart_label(key), [])]
    return nodes


def missing_leaves(tree: Node, sections: list[list[str]], value: Any, path: list[str]) -> list[str]:
    """Paths of `value`'s leaves printed under none of `sections` (with the same value)."""
    if isinstance(value, dict):
        return [
            p
            for key, sub in value.items()
            for p in missing_leaves(tree, sections, sub, [*path, key])
        ]
    if value in ([], {}):
        return []  # absent is empty: nothing to print
    for section in sections:
        for node in lookup(tree, [*section, *path]):
            if isinstance(value, list):
                items = node.get("", [])
                if len(items) == len(value) and all(map(same, items, value)):
                    return []
            elif "=" in node and same(node["="], value):
                return []
    return [".".join(path)]


def empty_sections(tree: Node, path: str = "") -> list[str]:
    found = []
    for label, children in tree.items():
        for child in children:
            if isinstance(child, dict) and "=" not in child:
                if not child:
                    found.append(f"{path}{label}")
                found += empty_sections(child, f"{path}{label}.")
    return found


def test_describe_shows_every_resolved_value_once_and_nothing_empty(
    k: Kubectl, operator: OperatorProcess
) -> None:
    k("apply", "-f", str(EXAMPLE))
    wait_for(
        lambda: (k.get("tftj", "digits-mlp").get("status") or {}).get("resolvedParameters"),
        60,
        message="the operator resolved the job",
    )
    params = resolved_from_dict(
        yaml.safe_load(k.get("configmap", "digits-mlp-params")["data"]["params.yaml"])
    )
    full = params.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = k("describe", "tftrainingjob", "digits-mlp").stdout
    tree = parse_describe(text)

    # Every value the trainer reads is printed: in the spec, or among the defaults the
    # operator filled in; every derived value under Derived.
    spec_sections = [["Spec"], ["Status", "resolvedParameters", "filledDefaults"]]
    assert missing_leaves(tree, spec_sections, full["spec"], []) == []
    derived = [["Status", "resolvedParameters", "derived"]]
    assert missing_leaves(tree, derived, full["derived"], []) == []
    # ... once: the defaults the operator filled are not in the spec too.
    obj = k.get("tftj", "digits-mlp")
    filled = obj["status"]["resolvedParameters"]["filledDefaults"]
    assert missing_leaves(tree, [["Spec"]], filled, []) == list(_leaf_paths(filled))
    assert obj["status"]["parametersHash"] == params.parameters_hash
    # No `Labels:` with nothing under it, no empty lists.
    assert empty_sections(tree) == []
    print(f"kubectl describe tftrainingjob digits-mlp: {len(text.splitlines())} lines")


def _leaf_paths(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for key, sub in value.items() for p in _leaf_paths(sub, f"{path}{key}.")]
    return [path.rstrip(".")]
