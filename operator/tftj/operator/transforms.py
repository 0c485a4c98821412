"""What the operator keeps of a worker Job or pod: the fields reconcile reads, nothing else
(controller-runtime's cache transforms). A kwok pod is ~5 KB of JSON and ~25 KB as Python
dicts; its lean form is a tenth of that, which is most of the operator's memory at 1,000 jobs.

Every reader of worker Jobs and pods (tftj.operator.status, tftj.operator.reconcile,
tftj.operator.kube) sees only these forms, from the watch-fed cache and from apiserver
listings alike, so a decision never depends on where its input came from. A field a new
policy reads must be added here: tests/unit/test_transforms.py checks that every reader
answers the same on the full objects and on their lean forms.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from tftj.operator.children import TRAINER_CONTAINER
from tftj.operator.status import INDEX_ANNOTATION as INDEX_KEY
from tftj.operator.status import POD_CONDITIONS_READ

Obj = dict[str, Any]

# Strings up to this length are shared between cached objects (see _compact): keys, phases,
# condition types and reasons, label values. Longer ones (uids, timestamps, messages) are
# mostly unique, and interning them would only grow the interpreter's table.
SHARED_STRING_MAX = 16


_META = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "deletionTimestamp")
_CONDITION = ("type", "status", "reason", "message", "lastTransitionTime")
_JOB_COUNTS = ("active", "ready", "succeeded", "failed")
_POD_STATUS = ("phase", "podIP", "reason", "message")


def _compact(value: Any) -> Any:
    """`value` with every key and short string interned. Each watch event is parsed on its
    own, so without this every cached pod holds its own copy of "metadata", "status", "True",
    "Running", ...: with 4,000 pods and 1,000 jobs cached that is a third of their memory."""
    if isinstance(value, dict):
        return {(sys.intern(k) if type(k) is str else k): _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_STRING_MAX:
        return sys.intern(value)
    return value


def _shared(obj: Obj) -> Obj:
    """`obj` as the cache keeps it (see _compact)."""
    compact: Obj = _compact(obj)
    return compact


def _pick(source: Any, keys: tuple[str, ...]) -> Obj:
    if not isinstance(source, dict):
        return {}
    return {k: source[k] for k in keys if source.get(k) is not None}


def _metadata(meta: Any, annotations: tuple[str, ...] = ()) -> Obj:
    meta = meta if isinstance(meta, dict) else {}
    lean = _pick(meta, _META)
    # Only tftj's own labels and the completion index are read; user labels on the pod
    # template (and the Job controller's) can be many and long.
    labels = meta.get("labels") or {}
    lean["labels"] = {
        k: v for k, v in labels.items() if k.startswith("tftj.dev/") or k == INDEX_KEY
    }
    kept = {k: v for k, v in (meta.get("annotations") or {}).items() if k in annotations}
    if kept:
        lean["annotations"] = kept
    return lean


def _conditions(status: Obj, types: frozenset[str] | None = None) -> list[Obj]:
    return [
        _pick(c, _CONDITION)
        for c in status.get("conditions") or []
        if isinstance(c, dict) and (types is None or c.get("type") in types)
    ]


def lean_training_job(job: Mapping[str, Any]) -> Obj:
    """A TFTrainingJob without what no reconcile reads: managedFields (often the larger part
    of a body an apply wrote) and kopf's bookkeeping annotations."""
    lean: Obj = dict(job)
    meta = dict(lean.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if "kopf.zalando.org" not in k
    }
    if annotations or "annotations" in meta:
        meta["annotations"] = annotations
    lean["metadata"] = meta
    return _shared(lean)


def lean_job(job: Mapping[str, Any]) -> Obj:
    """A worker Job as reconcile reads it: identity, labels, suspension, conditions, counts."""
    status = job.get("status") or {}
    lean: Obj = {"metadata": _metadata(job.get("metadata"))}
    if (job.get("spec") or {}).get("suspend"):
        lean["spec"] = {"suspend": True}
    lean["status"] = {**_pick(status, _JOB_COUNTS), "conditions": _conditions(status)}
    return _shared(lean)


def _container(cs: Obj) -> Obj:
    kept: Obj = {"name": cs.get("name")}
    terminated = (cs.get("state") or {}).get("terminated")
    if terminated:
        kept["state"] = {"terminated": terminated}
    last = (cs.get("lastState") or {}).get("terminated")
    if last:
        kept["lastState"] = {"terminated": last}
    return kept


def lean_pod(pod: Mapping[str, Any]) -> Obj:
    """A worker pod as reconcile reads it: identity, labels, the completion index, phase, IP,
    conditions and how the trainer container ended."""
    status = pod.get("status") or {}
    lean_status = _pick(status, _POD_STATUS)
    # The kubelet's other conditions (Initialized, ContainersReady, ...) were a third of a
    # lean pod and decide nothing.
    lean_status["conditions"] = _conditions(status, POD_CONDITIONS_READ)
    containers = [
        _container(cs)
        for cs in status.get("containerStatuses") or []
        if isinstance(cs, dict) and cs.get("name") == TRAINER_CONTAINER
    ]
    if containers:
        lean_status["containerStatuses"] = containers
    lean = {"metadata": _metadata(pod.get("metadata"), (INDEX_KEY,)), "status": lean_status}
    return _shared(lean)
