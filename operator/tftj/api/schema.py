"""The schema as plain data: the pydantic JSON schema with every $ref inlined, and lookups on it.

The CRD generator, docs/parameters.md, `tftj explain` and the error messages of validate() all
read field constraints from this one inlined tree, so a range printed in the docs is the range
the CRD enforces and the range an error message quotes.

Shape: a JSON-schema subset. `Optional[X]` fields are collapsed to X (they are simply not
required); titles are dropped; nested model defaults are kept as pydantic dumps them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from tftj.api.models import TFTrainingJob, TFTrainingJobSpec, TFTrainingJobStatus

Schema = dict[str, Any]

# Descriptions of the top-level objects (pydantic models have no field around them to carry one).
JOB_DESCRIPTION = (
    "A distributed TensorFlow training job: N workers training one model synchronously with "
    "MultiWorkerMirroredStrategy. Write spec; the operator writes status."
)
SPEC_DESCRIPTION = (
    "Every training parameter of the job. The operator never writes spec; everything it "
    "computes is in status."
)
STATUS_DESCRIPTION = (
    "Observed state, written by the operator: phase, conditions, the resolved parameters the "
    "workers train with, replica counts, restarts, last failure and progress."
)

_REF = re.compile(r"^#/\$defs/(?P<name>.+)$")


def _inline(node: Any, defs: dict[str, Schema]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    node.pop("title", None)
    ref = node.pop("$ref", None)
    if ref is not None:
        match = _REF.match(ref)
        assert match, ref
        target = _inline(defs[match["name"]], defs)
        # Field-level keys (description, default, x-tftj-*) win over the referenced model's.
        node = {**target, **{k: _inline(v, defs) for k, v in node.items()}}
        return node
    patterns = node.pop("patternProperties", None)
    if isinstance(patterns, dict) and len(patterns) == 1:
        # dict[ConstrainedKey, V]: pydantic says patternProperties + propertyNames; a structural
        # schema has neither. Keep one shape: additionalProperties for the values, propertyNames
        # (pattern, length) for the keys, which the CRD turns into a CEL rule.
        ((pattern, values),) = patterns.items()
        node["additionalProperties"] = values
        node["propertyNames"] = {**node.get("propertyNames", {}), "pattern": pattern}
    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        # Optional[X]: keep X; "not required" already says it may be absent.
        non_null = [option for option in any_of if option.get("type") != "null"]
        if len(non_null) == 1 and len(non_null) < len(any_of):
            node.pop("anyOf")
            node = {**_inline(non_null[0], defs), **node}
            if node.get("default", 0) is None:
                node.pop("default")
    return {key: _inline(value, defs) for key, value in node.items()}


def inline_schema(model: type[Any]) -> Schema:
    """`model`'s JSON schema (by alias) with $refs inlined and Optional collapsed."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    result: Schema = _inline(raw, defs)
    return result


@cache
def _cached(model: type[Any]) -> Schema:
    return inline_schema(model)


def spec_schema() -> Schema:
    return {**copy.deepcopy(_cached(TFTrainingJobSpec)), "description": SPEC_DESCRIPTION}


def status_schema() -> Schema:
    return {**copy.deepcopy(_cached(TFTrainingJobStatus)), "description": STATUS_DESCRIPTION}


def child(schema: Schema, key: str | int) -> Schema | None:
    """The schema of `key` inside `schema` (a property, a list item or a map value)."""
    if isinstance(key, int):
        items = schema.get("items")
        return items if isinstance(items, dict) else None
    props = schema.get("properties")
    if isinstance(props, dict) and key in props:
        result: Schema = props[key]
        return result
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def schema_at(loc: Sequence[str | int], root: Schema | None = None) -> Schema | None:
    """The schema at a location like ("spec", "training", "learningRate"); None if unknown."""
    node: Schema | None = _cached(TFTrainingJob) if root is None else root
    for key in loc:
        if node is None:
            return None
        node = child(node, key)
    return node


def property_names(schema: Schema) -> list[str]:
    props = schema.get("properties")
    return list(props) if isinstance(props, dict) else []


# ------------------------------------------------------------------------------ describing fields


def number_text(value: Any) -> str:
    """A number as a person writes it: 10 (not 10.0), 0.001, 1e-07."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def range_text(schema: Schema) -> str | None:
    """Allowed numeric range or length, e.g. "> 0 and <= 10", "1 to 64 items"; None if free."""
    low = high = None
    if "exclusiveMinimum" in schema:
        low = f"> {number_text(schema['exclusiveMinimum'])}"
    elif "minimum" in schema:
        low = f">= {number_text(schema['minimum'])}"
    if "exclusiveMaximum" in schema:
        high = f"< {number_text(schema['exclusiveMaximum'])}"
    elif "maximum" in schema:
        high = f"<= {number_text(schema['maximum'])}"
    if low or high:
        return " and ".join(part for part in (low, high) if part)
    for lo_key, hi_key, noun in (
        ("minItems", "maxItems", "items"),
        ("minLength", "maxLength", "characters"),
    ):
        lo, hi = schema.get(lo_key), schema.get(hi_key)
        if lo is not None and hi is not None:
            return f"{lo} to {hi} {noun}"
        if hi is not None:
            return f"at most {hi} {noun}"
        if lo is not None:
            return f"at least {lo} {noun}"
    return None


def enum_values(schema: Schema) -> list[Any] | None:
    if "enum" in schema:
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    return None


def type_name(schema: Schema) -> str:
    """A short human type: integer, number, string, boolean, object, []integer, map[string]string."""
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        return "[]" + (type_name(items) if isinstance(items, dict) else "any")
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return f"map[string]{type_name(extra)}"
        if extra is True and not schema.get("properties"):
            return "object (free-form)"
        return "object"
    if kind is None and ("enum" in schema or "const" in schema):
        return "string"
    return str(kind) if kind else "any"


def yaml_scalar(value: Any) -> str:
    """A value as a user would write it in YAML (true, null, 0.001, [loss, mae], {})."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_scalar(v)}" for k, v in value.items()) + "}"
    return str(value)


def default_text(schema: Schema) -> str | None:
    """The default as documented: the derived-default text, or the literal default value."""
    if "x-tftj-default" in schema:
        return str(schema["x-tftj-default"])
    if "default" not in schema:
        return None
    if schema.get("type") == "object" and schema.get("properties"):
        return None  # a nested object: its own fields document their defaults
    return yaml_scalar(schema["default"])


def full_description(schema: Schema) -> str:
    """The field's description with unit, allowed values, range and default appended."""
    parts = [str(schema.get("description", "")).strip()]
    if unit := schema.get("x-tftj-unit"):
        parts.append(f"Unit: {unit}.")
    if values := enum_values(schema):
        parts.append("One of: " + ", ".join(str(v) for v in values) + ".")
    items = schema.get("items")
    if isinstance(items, dict) and (values := enum_values(items)):
        parts.append("Items one of: " + ", ".join(str(v) for v in values) + ".")
    if rng := range_text(schema):
        parts.append(f"Range: {rng}.")
    if (default := default_text(schema)) is not None:
        parts.append(f"Default: {default}.")
    return " ".join(part for part in parts if part)


@dataclass(frozen=True)
class FieldRow:
    """One documented field, flattened: what docs/parameters.md and `tftj explain` show."""

    path: str
    schema: Schema
    required: bool


def iter_fields(schema: Schema, prefix: str) -> Iterator[FieldRow]:
    """Every field under `schema`, depth first, paths like spec.workers.podTemplate.env[].name."""
    required = set(schema.get("required", []))
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        yield FieldRow(path, sub, name in required)
        yield from iter_fields(sub, path)
        items = sub.get("items")
        if isinstance(items, dict):
            yield from iter_fields(items, path + "[]")
