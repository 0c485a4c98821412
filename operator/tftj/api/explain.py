"""`tftj explain FIELD`: the documentation of one field, offline, in the style of kubectl explain."""

from __future__ import annotations

from tftj.api.errors import closest
from tftj.api.models import API_VERSION, KIND
from tftj.api.schema import (
    JOB_DESCRIPTION,
    Schema,
    default_text,
    enum_values,
    property_names,
    range_text,
    spec_schema,
    status_schema,
    type_name,
)

# Leading words users carry over from kubectl (`kubectl explain tftj.spec`): accepted and dropped.
_RESOURCE_WORDS = {"tftj", "tftrainingjob", "tftrainingjobs", KIND.lower()}


class UnknownField(ValueError):
    """str() is the user-facing message, with a did-you-mean when one is close."""


def _root() -> Schema:
    return {
        "type": "object",
        "description": JOB_DESCRIPTION,
        "properties": {
            "apiVersion": {"type": "string", "description": f"Always {API_VERSION}."},
            "kind": {"type": "string", "description": f"Always {KIND}."},
            "metadata": {"type": "object", "description": "Standard object metadata."},
            "spec": spec_schema(),
            "status": status_schema(),
        },
        "required": ["spec"],
    }


def _split(path: str) -> list[str]:
    words = [w.removesuffix("[]") for w in path.replace("[]", "").split(".") if w]
    if words and words[0].lower() in _RESOURCE_WORDS:
        words = words[1:]
    if words and words[0] not in ("apiVersion", "kind", "metadata", "spec", "status"):
        words = ["spec", *words]  # `tftj explain training.batchSize` means the spec's
    return words


def _descend(schema: Schema) -> Schema:
    """Lists and maps are explained by their elements, as kubectl does."""
    while True:
        items = schema.get("items")
        if schema.get("type") == "array" and isinstance(items, dict) and items.get("properties"):
            schema = items
            continue
        return schema


def find(path: str) -> tuple[list[str], Schema]:
    """The words of `path` and the schema they name; raises UnknownField."""
    node = _root()
    words = _split(path)
    for i, word in enumerate(words):
        node = _descend(node)
        props = node.get("properties") or {}
        if word not in props:
            where = ".".join(words[:i]) or "the top level"
            hint = closest(word, props)
            message = f"field {word!r} does not exist in {where}"
            if hint:
                message += f" (did you mean {'.'.join([*words[:i], hint])!r}?)"
            elif props:
                message += "; fields there: " + ", ".join(props)
            raise UnknownField(message)
        node = props[word]
    return words, node


def explain(path: str = "") -> str:
    words, schema = find(path)
    lines = [f"KIND:     {KIND}", f"VERSION:  {API_VERSION}", ""]
    if words:
        lines += [f"FIELD:    {'.'.join(words)} <{type_name(schema)}>", ""]
    lines += ["DESCRIPTION:", f"    {schema.get('description', '(no description)')}"]
    facts = [
        ("UNIT", schema.get("x-tftj-unit")),
        ("VALUES", ", ".join(str(v) for v in enum_values(schema) or []) or None),
        ("RANGE", range_text(schema)),
        ("PATTERN", schema.get("pattern")),
        ("DEFAULT", default_text(schema)),
    ]
    items = schema.get("items")
    if isinstance(items, dict) and (values := enum_values(items)):
        facts.insert(1, ("ITEMS", ", ".join(str(v) for v in values)))
    shown = [(label, value) for label, value in facts if value]
    if shown:
        lines.append("")
        lines += [f"{label + ':':<10}{value}" for label, value in shown]
    node = _descend(schema)
    if property_names(node):
        required = set(node.get("required", []))
        lines += ["", "FIELDS:"]
        for field in property_names(node):
            sub = node["properties"][field]
            flag = " -required-" if field in required else ""
            summary = str(sub.get("description", "")).split(". ")[0].rstrip(".")
            lines += [f"  {field}\t<{type_name(sub)}>{flag}", f"    {summary}."]
    return "\n".join(lines) + "\n"
