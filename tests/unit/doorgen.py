"""Seeded random input for the doors a user's bytes come through (`tftj validate`, the webhook).

`manifests()` mutates valid TFTrainingJobs along the schema's own fields (boundary values, one
past them, wrong types, unknown and missing keys, bad names), so a good share stays valid and
the rest fails in every way the schema allows. `review_bodies()` wraps such manifests and
outright garbage into admission request bodies: not JSON, JSON of the wrong shape, wrong
types in every envelope field, unknown kinds, deep nesting, huge bodies.

Plain `random.Random(seed)`: fast enough for 10,000 of each in a benchmark (no shrinking), and
every failure is reproduced by its seed and index.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
from collections.abc import Iterator
from typing import Any

from tftj.api.schema import Schema, spec_schema

Path = tuple[str | int, ...]
Obj = dict[str, Any]

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**63,
    -(2**70),
    0.5,
    -1e-9,
    1e308,
    "",
    "x",
    "Not A Label",
    "a" * 300,
    "ünïcødé ☃",
    "1Gi",
    "-1",
    [],
    [1, "a", None],
    {},
    {"unknown": 1},
]

BASES: list[dict[str, Any]] = [
    {"data": {"format": "synthetic"}},
    {"data": {"format": "synthetic"}, "workers": {"replicas": 4, "gpusPerWorker": 1}},
    {
        "data": {"format": "csv", "path": "data/digits.csv"},
        "model": {"task": "classification", "outputUnits": 10, "hiddenUnits": [64, 32]},
        "storage": {"size": "1Gi"},
        "training": {"epochs": 3, "batchSize": 64, "optimizer": "sgd"},
    },
]


def leaf_fields(schema: Schema, prefix: Path = ()) -> list[tuple[Path, Schema]]:
    """Every (path, schema) of a scalar or list field under `schema`, list items as index 0."""
    props = schema.get("properties")
    if isinstance(props, dict):
        out = [(prefix, schema)]
        for key, sub in props.items():
            out += leaf_fields(sub, (*prefix, key))
        return out
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return [(prefix, schema), *leaf_fields(schema["items"], (*prefix, 0))]
    return [(prefix, schema)]


FIELDS = [(path, schema) for path, schema in leaf_fields(spec_schema()) if path]


def _bound_values(schema: Schema) -> list[Any]:
    out: list[Any] = []
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in schema:
            bound = schema[key]
            step = 1 if schema.get("type") == "integer" else 1e-6
            out += [bound, bound - step, bound + step]
    for key in ("minLength", "maxLength", "minItems", "maxItems"):
        if key in schema:
            out.append(int(schema[key]) + 1)
    return out


def value_for(schema: Schema, rnd: random.Random) -> Any:
    """A value for a field: mostly plausible (in range, a listed choice), often not."""
    roll = rnd.random()
    if roll < 0.15:
        return copy.deepcopy(rnd.choice(ODD_VALUES))
    if "enum" in schema:
        choice = str(rnd.choice(schema["enum"]))
        return choice if roll < 0.8 else choice.upper()
    kind = schema.get("type")
    if kind in ("integer", "number"):
        bounds = _bound_values(schema)
        if bounds and roll < 0.5:
            value = rnd.choice(bounds)
        else:
            value = rnd.choice([1, 2, 3, 8, 64, 1000]) * (rnd.random() if kind == "number" else 1)
        return int(value) if kind == "integer" and rnd.random() < 0.9 else value
    if kind == "string":
        if "maxLength" in schema and roll > 0.9:
            return "a" * (int(schema["maxLength"]) + 1)
        return rnd.choice(["a", "job-1", "x.y", "Bad_Value", "500m", "16Gi", "/data/x", "0"])
    if kind == "boolean":
        return rnd.random() < 0.5 if roll < 0.9 else "true"
    if kind == "array":
        items = schema.get("items") or {}
        return [value_for(items, rnd) for _ in range(rnd.randint(0, 4))]
    if kind == "object":
        return {} if roll < 0.6 else {"unknownField": 1}
    return copy.deepcopy(rnd.choice(ODD_VALUES))


def _set(doc: dict[str, Any], path: Path, value: Any) -> None:
    node: Any = doc
    for key, nxt in itertools.pairwise(path):
        child = node[key] if _has(node, key) else None
        if not isinstance(child, dict | list):
            child = [] if isinstance(nxt, int) else {}
            _put(node, key, child)
        node = child
    _put(node, path[-1], value)


def _has(node: Any, key: str | int) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and key < len(node)


def _put(node: Any, key: str | int, value: Any) -> None:
    if isinstance(node, list) and isinstance(key, int):
        while len(node) <= key:
            node.append(None)
    node[key] = value


def _delete(doc: dict[str, Any], rnd: random.Random) -> None:
    node: Any = doc
    while isinstance(node, dict) and node:
        key = rnd.choice(sorted(node))
        if not isinstance(node[key], dict) or not node[key] or rnd.random() < 0.4:
            del node[key]
            return
        node = node[key]


def mutate(doc: dict[str, Any], rnd: random.Random) -> None:
    roll = rnd.random()
    spec = doc.get("spec")
    if roll < 0.7 and isinstance(spec, dict):
        path, schema = rnd.choice(FIELDS)
        _set(spec, path, value_for(schema, rnd))
    elif roll < 0.8 and isinstance(spec, dict):
        _delete(spec, rnd)
    elif roll < 0.87 and isinstance(spec, dict):
        path, _ = rnd.choice(FIELDS)
        parent = path[:-1] if len(path) > 1 and not isinstance(path[-1], int) else ()
        _set(spec, (*parent, rnd.choice(["epoch", "bachSize", "Replicas", "foo"])), 1)
    elif roll < 0.95:
        doc["metadata"]["name"] = rnd.choice(
            ["", "UPPER", "-x", "a" * 60, "a.b", "ok-name", None, 7, "x" * 30 + "-1"]
        )
    elif roll < 0.98:
        doc["apiVersion"] = rnd.choice(["tftj.dev/v1", "v1", None, "tftj.dev/v1alpha1"])
    else:
        doc["spec"] = copy.deepcopy(rnd.choice(ODD_VALUES))


def manifests(seed: int, count: int) -> Iterator[dict[str, Any]]:
    """`count` TFTrainingJob manifests: about a third valid, the rest wrong in every way."""
    rnd = random.Random(seed)
    for index in range(count):
        doc = {
            "apiVersion": "tftj.dev/v1alpha1",
            "kind": "TFTrainingJob",
            "metadata": {"name": f"job-{index}"},
            "spec": copy.deepcopy(rnd.choice(BASES)),
        }
        for _ in range(rnd.choice([0, 1, 1, 2, 3])):
            mutate(doc, rnd)
        yield doc


def review(obj: Any, *, uid: str = "uid-1", operation: str = "CREATE", old: Any = None) -> Obj:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "tftj.dev", "version": "v1alpha1", "kind": "TFTrainingJob"},
            "resource": {"group": "tftj.dev", "version": "v1alpha1", "resource": "tftrainingjobs"},
            "name": "job",
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "fuzz"},
            "object": obj,
            "oldObject": old,
            "dryRun": False,
        },
    }


def _random_json(rnd: random.Random, depth: int = 0) -> Any:
    roll = rnd.random()
    if depth > 3 or roll < 0.5:
        return copy.deepcopy(rnd.choice(ODD_VALUES))
    if roll < 0.75:
        return [_random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    return {rnd.choice(["a", "request", "uid", "kind"]): _random_json(rnd, depth + 1)}


def _nested(depth: int, rnd: random.Random) -> str:
    if rnd.random() < 0.5:
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def review_bodies(seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """(category, body) pairs: what may arrive at the webhook, good reviews among them."""
    rnd = random.Random(seed)
    jobs = manifests(seed + 1, count)
    envelope_fields = ["apiVersion", "kind", "request"]
    request_fields = ["uid", "operation", "resource", "object", "oldObject", "userInfo", "kind"]
    for index in range(count):
        job = next(jobs)
        roll = rnd.random()
        if roll < 0.35:
            yield "manifest", json.dumps(review(job, uid=f"u{index}")).encode()
        elif roll < 0.45:
            old = copy.deepcopy(job)
            old["status"] = rnd.choice([{"startTime": "2026-01-01T00:00:00Z"}, {}, [], "x"])
            changed = copy.deepcopy(job)
            mutate(changed, rnd)
            body = review(changed, uid=f"u{index}", operation="UPDATE", old=old)
            yield "update", json.dumps(body).encode()
        elif roll < 0.55:
            body = review(job, uid=f"u{index}")
            body[rnd.choice(envelope_fields)] = _random_json(rnd)
            yield "wrong envelope", json.dumps(body).encode()
        elif roll < 0.7:
            body = review(job, uid=f"u{index}")
            body["request"][rnd.choice(request_fields)] = _random_json(rnd)
            yield "wrong request field", json.dumps(body).encode()
        elif roll < 0.75:
            body = review({**job, "kind": rnd.choice(["Pod", "Job", "", None, 3])})
            if rnd.random() < 0.5:
                body["request"]["resource"] = {"group": "", "version": "v1", "resource": "pods"}
            yield "unknown kind", json.dumps(body).encode()
        elif roll < 0.83:
            yield "wrong shape", json.dumps(_random_json(rnd)).encode()
        elif roll < 0.92:
            raw = json.dumps(review(job)).encode()
            yield (
                "not JSON",
                rnd.choice(
                    [
                        raw[: rnd.randrange(len(raw))],
                        bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 64))),
                        b"",
                        b"\xff\xfe{}",
                        raw.replace(b'"', b"'"),
                    ]
                ),
            )
        elif roll < 0.97:
            depth = rnd.choice([70, 1000, 100_000])
            if rnd.random() < 0.5:
                yield "deeply nested", _nested(depth, rnd).encode()
            else:
                raw = json.dumps(review({**job, "spec": "@@"})).encode()
                yield "deeply nested", raw.replace(b'"@@"', _nested(depth, rnd).encode())
        else:
            size = rnd.choice([100_000, 2_000_000])
            body = review({**job, "metadata": {"name": "big", "annotations": {"a": "x" * size}}})
            yield "huge", json.dumps(body).encode()
