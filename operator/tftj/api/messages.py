"""Pydantic's validation errors rewritten as tftj problems: path, what is allowed, what was given.

Pydantic says "Input should be less than or equal to 10"; a user needs the whole contract at
once (`must be > 0 and <= 10, got 11`), so ranges, enums and patterns are read back from the
inlined schema (tftj.api.schema) rather than from the single bound pydantic happened to check.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from tftj.api.errors import Problem, did_you_mean, error, format_loc
from tftj.api.formats import FORMAT_WORDS
from tftj.api.models import QUANTITY_PATTERN
from tftj.api.schema import Schema, enum_values, property_names, range_text, schema_at, yaml_scalar

_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}

# Patterns users cannot be expected to read, said in words.
_PATTERN_WORDS = {
    QUANTITY_PATTERN: "must be a Kubernetes quantity such as 500m, 2, 1.5 or 16Gi",
    **{pattern: f"must be {words}" for pattern, words in FORMAT_WORDS.items()},
}
_MAP_KEY = "[key]"  # pydantic's last location item when a mapping's key is invalid

_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_LENGTH_ERRORS = {"too_short", "too_long", "string_too_short", "string_too_long"}


def given(value: Any) -> str:
    """How a given value is quoted back: 'abc' for strings, -1, true, null, a list, a mapping."""
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(shown)
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, float) and value != value:
        return ".nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    return yaml_scalar(value)


def _one_of(values: Sequence[Any]) -> str:
    return "must be one of " + ", ".join(str(v) for v in values)


def _message(err: ErrorDetails, loc: Sequence[str | int], field: Schema | None) -> str:
    kind = err["type"]
    value = err.get("input")
    field = field or {}
    if kind == "missing":
        values = enum_values(field)
        return "required" + (f"; {_one_of(values)}" if values else "")
    if kind == "extra_forbidden":
        parent = schema_at(loc[:-1]) or {}
        known = property_names(parent)
        hint = did_you_mean(str(loc[-1]), known)
        if hint or not known:
            return f"unknown field{hint}"
        return "unknown field; allowed here: " + ", ".join(known)
    if kind in ("literal_error", "enum"):
        values = enum_values(field) or []
        hint = did_you_mean(value, [str(v) for v in values]) if isinstance(value, str) else ""
        return f"{_one_of(values)}, got {given(value)}{hint}"
    if kind == "distinct_items":
        return str(err["msg"])
    if kind == "finite_number":
        return f"must be a finite number, got {given(value)}"
    if kind in _RANGE_ERRORS or kind in _LENGTH_ERRORS:
        rng = range_text(field)
        if rng is None:  # constraint not in the schema: fall back to pydantic's own bound
            return f"{err['msg'].lower()}, got {given(value)}"
        if kind in _LENGTH_ERRORS:
            return f"must have {rng}, got {given(value)}"
        return f"must be {rng}, got {given(value)}"
    if kind == "string_pattern_mismatch":
        pattern = field.get("pattern") or err.get("ctx", {}).get("pattern")
        shape = _PATTERN_WORDS.get(str(pattern), f"must match {pattern}")
        return f"{shape}, got {given(value)}"
    if kind in _TYPE_WORDS:
        expected = _TYPE_WORDS[kind]
        if kind in ("int_type", "int_parsing") and isinstance(value, float):
            return f"must be an integer, got {given(value)} (a fraction)"
        return f"must be {expected}, got {given(value)}"
    return f"{err['msg']}, got {given(value)}"


def translate(exc: ValidationError, prefix: Sequence[str | int] = ()) -> Iterator[Problem]:
    """One problem per pydantic error, located under `prefix` (e.g. ("spec",))."""
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        if loc[-1] == _MAP_KEY:
            # A bad key of a mapping: reported at the mapping, naming the key.
            mapping = loc[:-2]
            keys = (schema_at(mapping) or {}).get("propertyNames")
            text = _message(err, mapping, keys if isinstance(keys, dict) else None)
            yield error(format_loc(mapping), f"key {given(loc[-2])} {text.split(', got ')[0]}")
            continue
        yield error(format_loc(loc), _message(err, loc, schema_at(loc)))
