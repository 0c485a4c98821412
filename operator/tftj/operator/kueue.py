"""Why Kueue holds a worker Job, read from its Workload. Pure functions over API objects.

With `spec.scheduling.queueName` Kueue manages the worker Job (batch/v1, one per attempt),
not the TFTrainingJob, which it does not know: the Job carries `kueue.x-k8s.io/queue-name`,
Kueue creates a Workload owned by it (named `job-<job name>-<hash>`, labelled with the Job's
UID), keeps the Job suspended until the Workload is admitted, and suspends it again when it
evicts the Workload (preemption by a higher-priority workload, ...). The operator never
unsuspends such a Job; it reports Kueue's reason in the job's status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
WORKLOAD_GROUP = "kueue.x-k8s.io"
WORKLOAD_VERSION = "v1beta2"
WORKLOAD_PLURAL = "workloads"


@dataclass(frozen=True)
class Hold:
    """Why the workers do not run: the status reason and message of the Pending phase."""

    reason: str  # Queued (never admitted yet, or requeued) | Preempted | Evicted
    message: str


def _condition(obj: Obj, type_: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return dict(c)
    return None


def _false_message(obj: Obj, type_: str) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "False":
            return str(c.get("message") or "")
    return ""


def hold(workload: Obj | None, queue: str, replicas: int) -> Hold:
    """What the status says while Kueue keeps the worker Job suspended. `workload` is the
    Job's Workload, None when Kueue has not created it yet (or it cannot be read)."""
    waiting = f"waiting for Kueue to admit all {replicas} workers (queue {queue})"
    if workload is None:
        return Hold("Queued", waiting)
    name = str((workload.get("metadata") or {}).get("name") or "")
    pending = _false_message(workload, "QuotaReserved")
    detail = f"{waiting}, Workload {name}" + (f": {pending}" if pending else "")
    evicted = _condition(workload, "Evicted")
    if evicted is not None:
        # Kueue stopped workers it had admitted; the checkpoint they wrote is resumed from.
        cause = str(evicted.get("reason") or "Evicted")
        reason = "Preempted" if cause == "Preempted" else "Evicted"
        return Hold(
            reason,
            f"Kueue evicted the workers ({cause}: {evicted.get('message') or ''}); {detail}",
        )
    return Hold("Queued", detail)
