"""What the admission webhook decides about a TFTrainingJob, as a pure function.

Errors (each `field.path: what is allowed, what was given`) deny the request; warnings are
returned as admission warnings, which kubectl prints. On UPDATE of a job that has started,
everything that changes what is trained is immutable: a run must stay reproducible from its
manifest, so changing it means creating a new job. Only the fields that steer the run
(suspend, deadline, TTL) may change, and metadata of course.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tftj.api.validate import validate

Obj = dict[str, Any]

# spec fields that may change after the job started (dotted paths under spec).
MUTABLE_WHEN_STARTED = (
    "runPolicy.suspend",
    "runPolicy.activeDeadlineSeconds",
    "runPolicy.ttlSecondsAfterFinished",
)
IMMUTABLE_HINT = "cannot change after the job started; create a new job: runs stay reproducible"


@dataclass
class Review:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.errors


def _manifest(body: Obj) -> Obj:
    """The parts validation looks at (not managedFields, status or server-set metadata)."""
    meta = body.get("metadata") or {}
    keep = ("name", "generateName", "namespace", "labels", "annotations")
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {k: meta[k] for k in keep if meta.get(k) is not None},
        "spec": body.get("spec"),
    }


def validation(body: Obj) -> Review:
    report = validate(_manifest(body))
    return Review(
        errors=[str(p) for p in report.errors], warnings=[str(p) for p in report.warnings]
    )


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
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
    return bool((body.get("status") or {}).get("startTime"))


def immutability(old: Obj, new: Obj) -> list[str]:
    if not has_started(old):
        return []
    return [
        f"spec.{path}: {IMMUTABLE_HINT}"
        for path in changed_paths(old.get("spec"), new.get("spec"))
        if not _mutable(path)
    ]


def review(operation: str, body: Obj, old: Obj | None) -> Review:
    if operation == "UPDATE" and old is not None:
        frozen = immutability(old, body)
        if frozen:
            return Review(errors=frozen)
        if old.get("spec") == body.get("spec"):
            return Review()  # metadata-only change: nothing new to validate
    return validation(body)
