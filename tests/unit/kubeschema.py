"""What the apiserver does with our CRD, re-done in Python for unit tests (no cluster needed).

- json_schema: the openAPIV3Schema as a JSON Schema (Draft 4 semantics: boolean
  exclusiveMinimum) for the `jsonschema` package. Objects with properties reject unknown fields,
  because the apiserver would silently prune them (a field tftj accepts but the CRD drops is a bug).
- cel_eval: a CRD rule evaluated with cel-python on the object as written (the CRD has no
  defaults), numbers typed as the schema says (CEL's double vs int matters for comparisons).
"""

from __future__ import annotations

import functools
from typing import Any

import celpy
from tftj.api.cel import CEL_RULES, ITEMS, CelRule
from tftj.api.crd import open_api_schema

Schema = dict[str, Any]
CRD_SCHEMA: Schema = open_api_schema()


def json_schema(schema: Schema) -> Schema:
    out: Schema = {}
    if schema.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True  # what the apiserver enforces for a set list
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in ("description", "default"):
            continue
        if key == "properties":
            out[key] = {name: json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = json_schema(value)
        else:
            out[key] = value
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


def _typed(schema: Schema, value: Any) -> Any:
    """JSON numbers as the schema types them (the apiserver gives CEL a double for `number`)."""
    kind = schema.get("type")
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        return {
            k: _typed(props.get(k) or (extra if isinstance(extra, dict) else {}), v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        items = schema.get("items") or {}
        return [_typed(items, v) for v in value]
    return value


def rejecting_rules(manifest: dict[str, Any]) -> list[CelRule]:
    """The CRD rules that reject `manifest`."""
    return [rule for rule in CEL_RULES if not cel_eval(rule, manifest)]


def node_at(rule: CelRule, manifest: Any) -> list[tuple[Schema, Any]]:
    """The (schema, value) pairs a rule runs on: one, or one per item for list-item rules."""
    pairs: list[tuple[Schema, Any]] = [(CRD_SCHEMA, manifest)]
    for key in rule.at:
        nxt: list[tuple[Schema, Any]] = []
        for schema, value in pairs:
            if key == ITEMS:
                nxt += [(schema["items"], item) for item in value]
            elif isinstance(value, dict) and key in value:
                nxt.append((schema["properties"][key], value[key]))
        pairs = nxt
    return pairs


_ENV = celpy.Environment()


@functools.cache
def _program(expression: str) -> Any:
    return _ENV.program(_ENV.compile(expression))


def cel_eval(rule: CelRule, manifest: dict[str, Any]) -> bool:
    """Whether the apiserver would accept `manifest` under this one rule."""
    program = _program(rule.expression)
    for schema, value in node_at(rule, manifest):
        result = program.evaluate({"self": celpy.json_to_cel(_typed(schema, value))})
        if isinstance(result, Exception):
            raise result
        if not bool(result):
            return False
    return True
