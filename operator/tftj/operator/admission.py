"""What the admission webhook answers, as pure functions: the AdmissionReview wire format
(`answer`) and the decision about a TFTrainingJob (`review`).

Errors (each `field.path: what is allowed, what was given`) deny the request; warnings are
returned as admission warnings, which kubectl prints. On UPDATE of a job that has started,
everything that changes what is trained is immutable: a run must stay reproducible from its
manifest, so changing it means creating a new job. Only the fields that steer the run
(suspend, deadline, TTL) may change, and metadata of course.

Any bytes may arrive at the webhook's door. A body that is not an AdmissionReview this webhook
can answer gets HTTP 400 with the reason; a well-formed review always gets an answer, allowed or
denied with a message, whatever its object holds: the same verdict `tftj validate` gives.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tftj.api import GROUP, PLURAL
from tftj.api.messages import given
from tftj.api.models import TFTrainingJobSpec
from tftj.api.validate import validate

log = logging.getLogger("tftj.operator")

REVIEW_API_VERSION = "admission.k8s.io/v1"
# Deeper than any TFTrainingJob (managedFields included): JSON this deep is not one, and
# bounding it keeps every walk over the review far from Python's recursion limit.
MAX_DEPTH = 64
OPERATIONS = ("CREATE", "UPDATE")  # what the webhook configuration sends; others are allowed

Obj = dict[str, Any]

# spec fields that may change after the job started (dotted paths under spec).
MUTABLE_WHEN_STARTED = (
    "runPolicy.suspend",
    "runPolicy.activeDeadlineSeconds",
    "runPolicy.ttlSecondsAfterFinished",
)
IMMUTABLE = "cannot change after the job started"
# Said once after the paths: why, and the two ways to train with the changed manifest.
IMMUTABLE_HINT = (
    "a started job's parameters are immutable so each run stays reproducible from its "
    "manifest. To train with the changed spec, apply it under a new metadata.name (in Git: "
    "rename the job); to re-run the same job from scratch, delete it "
    "(kubectl delete tftj NAME) and apply it again. Only "
    + ", ".join(f"spec.{path}" for path in MUTABLE_WHEN_STARTED)
    + " may change while it runs"
)

# Labels/annotations by which Argo CD and Flux mark the objects they sync. Argo CD's label
# tracking (its default before 3.0) uses app.kubernetes.io/instance, which plain Helm sets too:
# the warning names the mark it saw, so a Helm user can tell it does not apply.
GITOPS_MARKS = (
    ("annotation", "argocd.argoproj.io/tracking-id", "Argo CD"),
    ("label", "app.kubernetes.io/instance", "Argo CD"),
    ("label", "kustomize.toolkit.fluxcd.io/name", "Flux"),
    ("label", "helm.toolkit.fluxcd.io/name", "Flux"),
)


@dataclass
class Review:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.errors


def _manifest(body: Obj) -> Obj:
    """The parts validation looks at (not managedFields, status or server-set metadata)."""
    meta = body.get("metadata")
    keep = ("name", "generateName", "namespace", "labels", "annotations")
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": (
            {k: meta[k] for k in keep if meta.get(k) is not None}
            if isinstance(meta, dict)
            else meta  # validate() says what is wrong with it
        ),
        "spec": body.get("spec"),
    }


def validation(body: Any) -> Review:
    manifest = _manifest(body) if isinstance(body, dict) else body
    report = validate(manifest)
    return Review(
        errors=[str(p) for p in report.errors],
        warnings=[str(p) for p in report.warnings] + gitops_ttl_warnings(manifest),
    )


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def gitops_manager(body: Obj) -> str | None:
    """Which GitOps tool syncs this object and the mark that says so (None: none seen)."""
    meta = _dict(body.get("metadata"))
    for where, key, tool in GITOPS_MARKS:
        if key in _dict(meta.get(f"{where}s")):
            return f"{tool} ({where} {key})"
    return None


def gitops_ttl_warnings(body: Any) -> list[str]:
    """A TTL under GitOps deletes the finished job, and the tool's next sync re-creates it from
    Git: the same training runs again, and again after every TTL."""
    ttl = _dict(_dict(_dict(body).get("spec")).get("runPolicy")).get("ttlSecondsAfterFinished")
    manager = gitops_manager(_dict(body))
    if ttl is None or manager is None:
        return []
    return [
        f"spec.runPolicy.ttlSecondsAfterFinished: the job looks synced by {manager}, which "
        f"re-creates it once the TTL deleted it {ttl}s after it finished, and it trains again: "
        "leave the TTL out of jobs kept in Git (see docs/gitops.md)"
    ]


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif value != []:  # an empty map or list is the same as an absent one
        out[prefix] = value


def changed_paths(old: Any, new: Any) -> list[str]:
    """Dotted paths (leaf or whole list) whose values differ between `old` and `new`."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(old or {}, "", a)
    _flatten(new or {}, "", b)
    return sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))


def _mutable(path: str) -> bool:
    return any(path == m or path.startswith(m + ".") for m in MUTABLE_WHEN_STARTED)


def has_started(body: Obj) -> bool:
    status = body.get("status")
    return isinstance(status, dict) and bool(status.get("startTime"))


def effective_spec(spec: Any) -> Any:
    """The values a spec trains with, defaults included (the spec itself when it does not
    parse): writing out a default, or dropping one, changes nothing that is trained, and a job
    stored by an older CRD that defaulted its spec compares equal to its as-written manifest."""
    try:
        parsed = TFTrainingJobSpec.model_validate(spec)
    except ValidationError:
        return spec
    return parsed.model_dump(mode="json", by_alias=True, exclude_none=True)


def immutability(old: Obj, new: Obj) -> list[str]:
    if not has_started(old):
        return []
    frozen = [
        f"spec.{path}: {IMMUTABLE}"
        for path in changed_paths(effective_spec(old.get("spec")), effective_spec(new.get("spec")))
        if not _mutable(path)
    ]
    return [*frozen, IMMUTABLE_HINT] if frozen else []


def review(operation: str, body: Any, old: Any) -> Review:
    if operation == "UPDATE" and isinstance(old, dict) and isinstance(body, dict):
        frozen = immutability(old, body)
        if frozen:
            return Review(errors=frozen)
        if old.get("spec") == body.get("spec"):
            return Review()  # metadata-only change: nothing new to validate
    return validation(body)


# ---------------------------------------------------------------- the AdmissionReview wire format


class Malformed(ValueError):
    """Not an AdmissionReview this webhook can answer (HTTP 400 with this reason)."""


@dataclass(frozen=True)
class Request:
    uid: str
    operation: str
    object: Any
    old_object: Any


@dataclass(frozen=True)
class Answer:
    status: int  # HTTP status: 200 with `body`, or 400 with `reason`
    operation: str = ""  # CREATE, UPDATE or OTHER (a bounded metrics label); "" if malformed
    result: str = ""  # allowed, denied or error (a bounded metrics label)
    body: Obj | None = None
    reason: str = ""


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests deeper than `limit` (iteratively: never a RecursionError)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _field(mapping: Obj, key: str, where: str, kind: type, what: str) -> Any:
    value = mapping.get(key)
    if not isinstance(value, kind) or (kind is str and not value):
        raise Malformed(f"{where}{key}: must be {what}, got {given(value)}")
    return value


def parse_request(raw: bytes) -> Request:
    """The request of an admission.k8s.io/v1 AdmissionReview, or Malformed naming the field."""
    try:
        document = json.loads(raw)
    except RecursionError:
        raise Malformed(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Malformed(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise Malformed(f"an AdmissionReview must be a JSON object, got {given(document)}")
    if _depth_exceeds(document, MAX_DEPTH):
        raise Malformed(f"JSON nested deeper than {MAX_DEPTH} levels")
    if (
        document.get("apiVersion") != REVIEW_API_VERSION
        or document.get("kind") != "AdmissionReview"
    ):
        raise Malformed(
            f"must be an AdmissionReview of {REVIEW_API_VERSION}, got kind "
            f"{given(document.get('kind'))} of {given(document.get('apiVersion'))}"
        )
    request = _field(document, "request", "", dict, "a mapping")
    uid = _field(request, "uid", "request.", str, "a non-empty string")
    operation = _field(request, "operation", "request.", str, "a non-empty string")
    resource = _field(request, "resource", "request.", dict, "a mapping")
    if (resource.get("group"), resource.get("resource")) != (GROUP, PLURAL):
        raise Malformed(
            f"request.resource: this webhook reviews {PLURAL}.{GROUP} only, got "
            f"{given(resource.get('resource'))} of group {given(resource.get('group'))}"
        )
    obj = request.get("object")
    if operation in OPERATIONS and not isinstance(obj, dict):
        raise Malformed(f"request.object: must be a mapping for {operation}, got {given(obj)}")
    return Request(uid=uid, operation=operation, object=obj, old_object=request.get("oldObject"))


def response(uid: str, verdict: Review) -> Obj:
    """The AdmissionReview answering request `uid`."""
    answer: Obj = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        # kubectl prints this one message: every problem, each naming its field.
        answer["status"] = {"code": 422, "reason": "Invalid", "message": "; ".join(verdict.errors)}
    if verdict.warnings:
        answer["warnings"] = verdict.warnings
    return {"apiVersion": REVIEW_API_VERSION, "kind": "AdmissionReview", "response": answer}


def answer(raw: bytes) -> Answer:
    """What the webhook sends back for the request body `raw`, whatever it holds."""
    try:
        request = parse_request(raw)
    except Malformed as exc:
        return Answer(400, reason=str(exc))
    operation = request.operation if request.operation in OPERATIONS else "OTHER"
    if operation == "OTHER":
        return Answer(200, operation, "allowed", response(request.uid, Review()))
    try:
        verdict = review(operation, request.object, request.old_object)
    except Exception as exc:
        # A bug of ours must not block every apply with a 5xx; it fails closed (as
        # failurePolicy Fail would) with a message, and the log has the traceback.
        log.exception("admission review %s failed", request.uid)
        verdict = Review(errors=[f"internal error in the tftj webhook: {type(exc).__name__}"])
        return Answer(200, operation, "error", response(request.uid, verdict))
    result = "allowed" if verdict.allowed else "denied"
    return Answer(200, operation, result, response(request.uid, verdict))
