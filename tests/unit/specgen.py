"""Hypothesis strategies that generate TFTrainingJob specs from the schema itself.

Driven by the inlined JSON schema (tftj.api.schema), so a new field is generated without a test
change. Values lean towards small numbers and few optional fields, which keeps a useful share of
the generated specs valid under the cross-field rules too.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from tftj.api.schema import Schema, spec_schema

_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_.", min_size=1, max_size=8)


def _integer(schema: Schema) -> st.SearchStrategy[int]:
    if "minimum" in schema:
        lo = int(schema["minimum"])
    elif "exclusiveMinimum" in schema:
        lo = int(schema["exclusiveMinimum"]) + 1
    else:
        lo = 0
    hi = int(schema.get("maximum", lo + 1_000_000))
    # Mostly small values (the cross-field rules like them), sometimes anything in range.
    return st.one_of(st.integers(lo, min(hi, lo + 8)), st.integers(lo, hi))


def _number(schema: Schema) -> st.SearchStrategy[float]:
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    return st.floats(
        min_value=lo,
        max_value=hi,
        exclude_min="exclusiveMinimum" in schema,
        exclude_max="exclusiveMaximum" in schema,
        allow_nan=False,
        allow_infinity=False,
    )


def _string(schema: Schema) -> st.SearchStrategy[str]:
    hi = schema.get("maxLength", 30)
    lo = schema.get("minLength", 0)
    if pattern := schema.get("pattern"):
        return st.from_regex(
            pattern,
            fullmatch=True,
            alphabet=st.characters(codec="ascii", exclude_characters="\n\r"),
        ).filter(lambda s: lo <= len(s) <= hi)
    return st.text(
        alphabet=st.characters(codec="ascii", min_codepoint=32), min_size=lo, max_size=min(hi, 12)
    )


def from_schema(schema: Schema) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        return _integer(schema)
    if kind == "number":
        return _number(schema)
    if kind == "string":
        return _string(schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        lo = schema.get("minItems", 0)
        return st.lists(
            from_schema(schema["items"]),
            unique=schema.get("x-kubernetes-list-type") == "set",
            min_size=lo,
            max_size=max(lo, min(schema.get("maxItems", 3), 3)),
        )
    if kind == "object":
        props = schema.get("properties")
        if props:
            required = set(schema.get("required", []))
            return st.fixed_dictionaries(
                {k: from_schema(v) for k, v in props.items() if k in required},
                optional={k: from_schema(v) for k, v in props.items() if k not in required},
            )
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            keys = schema.get("propertyNames")
            names = _string({"type": "string", **keys}) if keys else _NAME
            return st.dictionaries(names, from_schema(extra), max_size=2)
        return st.just({"free": {"form": [1, "x"]}})
    raise AssertionError(f"no strategy for {schema}")


def specs() -> st.SearchStrategy[dict[str, Any]]:
    return from_schema(spec_schema())
