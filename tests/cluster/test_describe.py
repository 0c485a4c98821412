"""`kubectl describe tftrainingjob` on the shipped digits example, read as a person would: every
resolved value is there, once (the spec as written, the defaults the operator resolved one line
per group in status), nothing printed is empty, and it fits the issue's budget of 120 lines."""

from __future__ import annotations

import json
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


def printed_pairs(line: str) -> dict[str, str]:
    """`key=value key=value` (status.resolvedParameters' one-line groups) as a dict."""
    return dict(word.partition("=")[::2] for word in line.split())


def same_word(printed: str, value: Any) -> bool:
    if isinstance(value, list | dict):
        return json.loads(printed) == value
    return same(printed, value)


def leaves(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of every leaf; an empty map or list is no leaf (absent is empty)."""
    if isinstance(value, dict) and value:
        return [leaf for key, sub in value.items() for leaf in leaves(sub, (*path, key))]
    return [] if value in ({}, []) else [(path, value)]


def in_spec(tree: Node, path: tuple[str, ...], value: Any) -> bool:
    for node in lookup(tree, ["Spec", *path]):
        if isinstance(value, list):
            items = node.get("", [])
            if len(items) == len(value) and all(map(same, items, value)):
                return True
        elif "=" in node and same(node["="], value):
            return True
    return False


def in_group(tree: Node, section: list[str], group: str, key: str, value: Any) -> bool:
    for node in lookup(tree, ["Status", "resolvedParameters", *section]):
        for line in node.get(group, []):
            pairs = printed_pairs(line.get("=", ""))
            if key in pairs and same_word(pairs[key], value):
                return True
    return False


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

    # Every value the trainer reads is printed: in the spec as written, or on the line of its
    # group among the defaults the operator resolved ...
    missing = [
        ".".join(path)
        for path, value in leaves(full["spec"])
        if not in_spec(tree, path, value)
        and not in_group(tree, ["defaults"], ".".join(("spec", *path[:-1])), path[-1], value)
    ]
    assert missing == []
    # ... and once: what is in the spec is not among the defaults.
    twice = [
        ".".join(path)
        for path, value in leaves(full["spec"])
        if in_spec(tree, path, value)
        and in_group(tree, ["defaults"], ".".join(("spec", *path[:-1])), path[-1], value)
    ]
    assert twice == []
    # Every derived value, on the Derived line.
    derived = full["derived"].items()
    assert [key for key, value in derived if not in_group(tree, [], "Derived", key, value)] == []
    obj = k.get("tftj", "digits-mlp")
    assert obj["status"]["parametersHash"] == params.parameters_hash
    # No `Labels:` with nothing under it, no empty lists.
    assert empty_sections(tree) == []
    lines = len(text.splitlines())
    print(f"kubectl describe tftrainingjob digits-mlp: {lines} lines")
    assert lines < 120, text
