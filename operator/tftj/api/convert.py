"""Plain snake_case training configs -> TFTrainingJob manifests (`tftj convert`).

Many teams keep parameters in a config like `training: {batch_size: 64}, model: {hidden_units:
[...]}`. Keys are renamed to the schema's camelCase by walking the schema, so an unknown or
misspelled key is reported (with a did-you-mean in the user's own snake_case) instead of being
carried into a manifest the apiserver would reject. Values are copied unchanged, and keys inside
free-form maps (labels, nodeSelector, resources, valueFrom, ...) are never renamed.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic.alias_generators import to_camel, to_snake

from tftj.api.errors import Problem, did_you_mean, error
from tftj.api.models import API_VERSION, KIND
from tftj.api.schema import Schema, spec_schema

_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def job_name_from(text: str) -> str:
    """A DNS-1035 label made from a file name: "My_Config.v2" -> "my-config-v2"."""
    name = _NOT_DNS.sub("-", text.lower()).strip("-")
    name = name.lstrip("0123456789-") or "job"
    return name[:51].rstrip("-")


def _convert(value: Any, schema: Schema, path: str, problems: list[Problem]) -> Any:
    props = schema.get("properties")
    if isinstance(value, dict) and isinstance(props, dict):
        out: dict[str, Any] = {}
        for key, sub_value in value.items():
            key_text = str(key)
            camel = key_text if key_text in props else to_camel(key_text)
            where = f"{path}.{key_text}" if path else key_text
            if camel not in props:
                hint = did_you_mean(key_text, [to_snake(p) for p in props])
                problems.append(error(where, f"unknown key{hint}"))
                continue
            out[camel] = _convert(sub_value, props[camel], where, problems)
        return out
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, dict) and items.get("properties"):
        return [_convert(v, items, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def convert_config(config: Any, name: str) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The manifest for a snake_case config, or None and the keys that could not be mapped."""
    if not isinstance(config, dict):
        return None, [error("", "a training config must be a mapping of sections")]
    if "kind" in config or "apiVersion" in config:
        return None, [error("kind", "this is already a manifest; use `tftj validate` on it")]
    problems: list[Problem] = []
    spec = _convert(config, spec_schema(), "", problems)
    if problems:
        return None, problems
    manifest = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}
    return manifest, []
