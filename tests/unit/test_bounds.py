"""Every value the schema accepts is one the trainer and Kubernetes can use: bounded numbers
(list items and map values too), bounded lists and maps, and strings validated as what they
become (a Kubernetes name, label, path, image). The same verdict from pydantic (`tftj validate`,
the webhook) and from the CRD's structural schema and key rules (the apiserver)."""

from __future__ import annotations

from typing import Any

import celpy
import jsonschema
import pytest
from cases import manifest, merged
from kubeschema import CRD_SCHEMA, json_schema
from tftj.api.schema import Schema, iter_fields, spec_schema
from tftj.api.validate import validate

CRD_VALIDATOR = jsonschema.Draft4Validator(json_schema(CRD_SCHEMA))
# Strings that are free text by design: Kubernetes itself allows any content there.
FREE_TEXT = {
    "spec.workers.podTemplate.annotations{}": "annotation values are arbitrary text",
    "spec.workers.podTemplate.env[].value": "environment values are arbitrary text",
}


def _nodes() -> list[tuple[str, Schema]]:
    """Every schema node under spec, including list items ([]), map values ({}), keys ({key})."""
    out: list[tuple[str, Schema]] = []
    for row in iter_fields(spec_schema(), "spec"):
        out.append((row.path, row.schema))
        extra = row.schema.get("additionalProperties")
        if isinstance(extra, dict):
            out.append((row.path + "{}", extra))
        keys = row.schema.get("propertyNames")
        if isinstance(keys, dict):
            out.append((row.path + "{key}", {"type": "string", **keys}))
        items = row.schema.get("items")
        if isinstance(items, dict) and items.get("type") in ("integer", "number", "string"):
            out.append((row.path + "[]", items))
    return out


def test_every_number_has_a_lower_and_an_upper_bound() -> None:
    unbounded = [
        path
        for path, node in _nodes()
        if node.get("type") in ("integer", "number")
        and not (
            ("minimum" in node or "exclusiveMinimum" in node)
            and ("maximum" in node or "exclusiveMaximum" in node)
        )
    ]
    assert unbounded == []


def test_every_list_and_map_is_bounded() -> None:
    unbounded = [
        path
        for path, node in _nodes()
        if (node.get("type") == "array" and "maxItems" not in node)
        or (
            node.get("type") == "object"
            and isinstance(node.get("additionalProperties"), dict)
            and "maxProperties" not in node
        )
    ]
    assert unbounded == []


def test_every_string_has_a_format_and_a_length_unless_free_text() -> None:
    loose = [
        path
        for path, node in _nodes()
        if node.get("type") == "string"
        and "enum" not in node
        and not (node.get("pattern") and node.get("maxLength"))
        and path not in FREE_TEXT
    ]
    assert loose == []
    assert set(FREE_TEXT) <= {path for path, _ in _nodes()}, "stale FREE_TEXT entry"


def _crd_errors(m: dict[str, Any]) -> list[str]:
    """What the apiserver's structural schema and the map-key CEL rules say about `m`."""
    errors = [e.message for e in CRD_VALIDATOR.iter_errors(m)]
    env = celpy.Environment()
    stack: list[tuple[Schema, Any]] = [(CRD_SCHEMA, m)]
    while stack:
        schema, value = stack.pop()
        if isinstance(value, dict):
            for rule in schema.get("x-kubernetes-validations", []):
                if rule["rule"].startswith("self.all(k,"):
                    program = env.program(env.compile(rule["rule"]))
                    if not program.evaluate({"self": celpy.json_to_cel(value)}):
                        errors.append(rule["message"])
            props = schema.get("properties") or {}
            stack += [(props[k], v) for k, v in value.items() if k in props]
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            stack += [(schema["items"], v) for v in value]
    return errors


# (spec patch, field path reported, a word of the message): values the trainer or Kubernetes
# cannot use, which every front end must refuse.
BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"model": {"hiddenUnits": [64, 0]}}, "spec.model.hiddenUnits[1]", ">= 1"),
    ({"model": {"hiddenUnits": [10_000_000]}}, "spec.model.hiddenUnits[0]", "<= 65536"),
    (
        {"model": {"task": "binary"}, "training": {"metrics": ["auc", "precision", "auc"]}},
        "spec.training.metrics",
        "auc twice",
    ),
    (
        {"training": {"schedule": {"type": "step", "decayEpochs": 1e-52}}},
        "spec.training.schedule.decayEpochs",
        ">= 0.001",
    ),
    (
        {"training": {"optimizerParams": {"epsilon": 1e-30}}},
        "spec.training.optimizerParams.epsilon",
        ">= 1e-10",
    ),
    (
        {"runPolicy": {"activeDeadlineSeconds": 10**30}},
        "spec.runPolicy.activeDeadlineSeconds",
        "<=",
    ),
    (
        {"runPolicy": {"ttlSecondsAfterFinished": 10**30}},
        "spec.runPolicy.ttlSecondsAfterFinished",
        "<=",
    ),
    ({"scheduling": {"queueName": "Not A Label"}}, "spec.scheduling.queueName", "LocalQueue"),
    ({"scheduling": {"queueName": "q" * 64}}, "spec.scheduling.queueName", "63"),
    ({"scheduling": {"priorityClassName": "High"}}, "spec.scheduling.priorityClassName", "DNS"),
    ({"scheduling": {"schedulerName": "my sched"}}, "spec.scheduling.schedulerName", "DNS"),
    (
        {"workers": {"podTemplate": {"serviceAccountName": "a_b"}}},
        "spec.workers.podTemplate.serviceAccountName",
        "DNS",
    ),
    ({"storage": {"claimName": "a..b"}}, "spec.storage.claimName", "DNS"),
    ({"storage": {"mountPath": "/"}}, "spec.storage.mountPath", "absolute path"),
    ({"storage": {"mountPath": "/a/../etc"}}, "spec.storage.mountPath", "absolute path"),
    ({"logging": {"directory": "../escape"}}, "spec.logging.directory", "relative path"),
    ({"checkpoint": {"directory": "/abs"}}, "spec.checkpoint.directory", "relative path"),
    ({"export": {"directory": "a\nb"}}, "spec.export.directory", "relative path"),
    ({"workers": {"image": "Not An Image"}}, "spec.workers.image", "image reference"),
    ({"tensorboard": {"image": "tb:"}}, "spec.tensorboard.image", "image reference"),
    ({"data": {"labelKey": "a\x00b"}}, "spec.data.labelKey", "control characters"),
    (
        {"workers": {"podTemplate": {"labels": {"team": "a b"}}}},
        "spec.workers.podTemplate.labels.team",
        "label value",
    ),
    (
        {"workers": {"podTemplate": {"labels": {"a b": "x"}}}},
        "spec.workers.podTemplate.labels",
        "key",
    ),
    (
        {"workers": {"podTemplate": {"annotations": {"x/y/z": "anything"}}}},
        "spec.workers.podTemplate.annotations",
        "key",
    ),
    (
        {"workers": {"podTemplate": {"nodeSelector": {"pool": "gpu pool"}}}},
        "spec.workers.podTemplate.nodeSelector.pool",
        "label value",
    ),
    (
        {"workers": {"podTemplate": {"tolerations": [{"key": "bad key", "operator": "Exists"}]}}},
        "spec.workers.podTemplate.tolerations[0].key",
        "key",
    ),
    (
        {"workers": {"resources": {"requests": {"CPU": "1"}}}},
        "spec.workers.resources.requests",
        "resource name",
    ),
]


@pytest.mark.parametrize(("patch", "path", "says"), BAD, ids=[b[1] for b in BAD])
def test_bad_values_are_refused_by_validate_and_by_the_crd(
    patch: dict[str, Any], path: str, says: str
) -> None:
    m = manifest(merged({"data": {"format": "synthetic"}}, patch))
    problems = [p for p in validate(m).errors if p.path == path]
    assert problems, [str(p) for p in validate(m).errors]
    assert any(says in p.message for p in problems), [str(p) for p in problems]
    assert _crd_errors(m), "the CRD accepts what validate() refuses"


GOOD: list[dict[str, Any]] = [
    {"model": {"hiddenUnits": [1, 65536]}},
    {"scheduling": {"queueName": "team-a.gpu", "priorityClassName": "high", "schedulerName": "x"}},
    {"storage": {"claimName": "data.v1", "mountPath": "/mnt/data_1/job-x"}},
    {"logging": {"directory": "runs/2026-12-01_a.b"}},
    {"workers": {"image": "registry.example.com:5000/team/trainer:v1.2-rc_3"}},
    {"workers": {"image": "Localhost/t@sha256:" + "a" * 64}},
    {"workers": {"podTemplate": {"labels": {"example.com/team": "A_b.c", "empty": ""}}}},
    {"workers": {"podTemplate": {"annotations": {"note": "any text\nat all"}}}},
    {"workers": {"resources": {"requests": {"hugepages-2Mi": "1Gi", "example.com/fpga": "1"}}}},
    {
        "workers": {
            "podTemplate": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}
        }
    },
]


@pytest.mark.parametrize("patch", GOOD, ids=lambda p: str(p)[:60])
def test_legal_values_pass_validate_and_the_crd(patch: dict[str, Any]) -> None:
    m = manifest(merged({"data": {"format": "synthetic"}}, patch))
    assert [str(p) for p in validate(m).errors] == []
    assert _crd_errors(m) == []
