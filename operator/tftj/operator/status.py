"""Reading the state of worker Jobs and pods: readiness, the first failure, the scheduler's
reason for a pending pod, the chief's metrics endpoint. Pure functions over API objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tftj.api.contract import CONSEQUENCE_EXIT_CODES
from tftj.operator.children import DISRUPTION_TARGET, TRAINER_CONTAINER

Obj = dict[str, Any]
JobOutcome = Literal["Complete", "Failed"]
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
#: Every pod condition type a reader below looks at (the lean pod keeps only these: see
#: tftj.operator.transforms); a reader of another one must add it here.
POD_CONDITIONS_READ = frozenset({"Ready", "PodScheduled", DISRUPTION_TARGET})


@dataclass(frozen=True)
class WorkerFailure:
    """The first worker failure of an attempt: what status.lastFailure reports."""

    worker_index: int | None
    exit_code: int | None
    reason: str
    message: str
    #: Kubernetes ended the worker (DisruptionTarget: evicted, preempted, node lost); `reason`
    #: is then the condition's (EvictionByEvictionAPI, PreemptionByScheduler, DeletionByPodGC,
    #: DeletionByTaintManager, TerminationByKubelet).
    disrupted: bool = False


def _conditions(obj: Obj) -> list[Obj]:
    return list((obj.get("status") or {}).get("conditions") or [])


def has_condition(obj: Obj, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in _conditions(obj))


def job_outcome(job: Obj) -> JobOutcome | None:
    """Complete or Failed once the batch Job controller decided, else None."""
    if has_condition(job, "Complete"):
        return "Complete"
    if has_condition(job, "Failed"):
        return "Failed"
    return None


def job_failure_condition(job: Obj) -> Obj | None:
    return next(
        (c for c in _conditions(job) if c.get("type") == "Failed" and c.get("status") == "True"),
        None,
    )


def is_suspended(job: Obj) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def pods_since_resume(job: Obj, pods: list[Obj]) -> list[Obj]:
    """`pods` without the workers a suspension of the Job stopped (Kueue preempting it): the
    Job controller deleted them, they end Failed (exit code 143) and may linger while being
    deleted. They are neither failures nor workers of the resumed run. They are the deleted
    pods created before the last transition of the Job's Suspended condition: True at the
    suspension, False at the resume (the condition may still say True for a moment after
    Kueue has unsuspended the Job)."""
    changed = next(
        (c.get("lastTransitionTime") for c in _conditions(job) if c.get("type") == "Suspended"),
        None,
    )
    if not changed:
        return pods

    def stopped(pod: Obj) -> bool:
        meta = pod.get("metadata") or {}
        # RFC 3339 UTC timestamps of one apiserver compare correctly as strings.
        created = str(meta.get("creationTimestamp") or "")
        return bool(meta.get("deletionTimestamp")) and created < str(changed)

    return [p for p in pods if not stopped(p)]


def pod_index(pod: Obj) -> int | None:
    meta = pod.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(INDEX_ANNOTATION) or (meta.get("labels") or {}).get(
        INDEX_ANNOTATION
    )
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def pod_phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def pod_ready(pod: Obj) -> bool:
    return (
        pod_phase(pod) == "Running"
        and not (pod.get("metadata") or {}).get("deletionTimestamp")
        and has_condition(pod, "Ready")
    )


def _terminated(pod: Obj) -> Obj | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == TRAINER_CONTAINER:
            state = cs.get("state") or {}
            terminated = state.get("terminated") or (cs.get("lastState") or {}).get("terminated")
            return terminated if isinstance(terminated, dict) else None
    return None


def _exit_code(pod: Obj) -> int | None:
    code = (_terminated(pod) or {}).get("exitCode")
    return int(code) if code is not None else None


def _failure_time(pod: Obj) -> str:
    terminated = _terminated(pod) or {}
    disruption = disruption_condition(pod) or {}
    return str(
        terminated.get("finishedAt")
        or disruption.get("lastTransitionTime")
        or (pod.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def is_disrupted(pod: Obj) -> bool:
    """Kubernetes is ending the worker (DisruptionTarget, being deleted), whatever its phase
    says: on a node whose kubelet is gone (NotReady) it never reaches Failed, and the group
    must not wait for that to decide the restart (the restart itself still waits for it to
    go, see reconcile)."""
    deleting = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    return deleting and disruption_condition(pod) is not None


def first_failure(pods: list[Obj]) -> WorkerFailure | None:
    """The earliest-finished failed (or disrupted) worker among `pods` (one attempt's), or
    None."""
    failed = [p for p in pods if pod_phase(p) == "Failed" or is_disrupted(p)]
    if not failed:
        return None
    # Times have a resolution of seconds, and a failed worker's Job stops the rest of the
    # group at once, so the cause and its consequences often end in the same second. On a tie
    # the disrupted worker is the cause (charging the 143 its FailJob rule caused would fail a
    # job Kubernetes disrupted); then a worker that did not end as a consequence (143 / 11 /
    # 10, CONSEQUENCE_EXIT_CODES): else worker 1's OOM kill (137) or BAD_DATA (4) would be
    # reported, and judged, as worker 0's 143 - retrying a permanent error.
    pod = min(
        failed,
        key=lambda p: (
            _failure_time(p),
            disruption_condition(p) is None,
            _exit_code(p) in CONSEQUENCE_EXIT_CODES,
            pod_index(p) or 0,
        ),
    )
    terminated = _terminated(pod) or {}
    code = _exit_code(pod)
    status = pod.get("status") or {}
    message = str(terminated.get("message") or status.get("message") or "").strip()
    reason = str(status.get("reason") or terminated.get("reason") or "Error")
    disruption = disruption_condition(pod)
    if disruption is not None:
        reason = str(disruption.get("reason") or DISRUPTION_TARGET)
        message = str(disruption.get("message") or message)
    return WorkerFailure(
        worker_index=pod_index(pod),
        exit_code=code,
        reason=reason,
        message=message[-1024:],
        disrupted=disruption is not None,
    )


def disruption_condition(pod: Obj) -> Obj | None:
    """The pod's DisruptionTarget condition when Kubernetes (not the trainer) ended it."""
    return next(
        (
            c
            for c in _conditions(pod)
            if c.get("type") == DISRUPTION_TARGET and c.get("status") == "True"
        ),
        None,
    )


def job_failed_by_disruption(job: Obj) -> bool:
    """Whether the worker Job failed through its DisruptionTarget podFailurePolicy rule."""
    cond = job_failure_condition(job) or {}
    return cond.get("reason") == "PodFailurePolicy" and DISRUPTION_TARGET in str(
        cond.get("message") or ""
    )


def unschedulable_message(pods: list[Obj]) -> str | None:
    """The scheduler's explanation for a pod it cannot place, e.g. "0/3 nodes are available:
    3 Insufficient nvidia.com/gpu." (from the pod's PodScheduled condition)."""
    for pod in sorted(pods, key=lambda p: pod_index(p) or 0):
        for c in _conditions(pod):
            if (
                c.get("type") == "PodScheduled"
                and c.get("status") == "False"
                and c.get("reason") == "Unschedulable"
            ):
                return str(c.get("message") or "unschedulable")
    return None


def chief_pod(pods: list[Obj]) -> Obj | None:
    """Worker 0 of the attempt when it runs and has an IP (its /metrics carry progress)."""
    for pod in pods:
        running = pod_index(pod) == 0 and pod_phase(pod) == "Running"
        if running and (pod.get("status") or {}).get("podIP"):
            return pod
    return None


def pod_signal(pod: Obj) -> tuple[Any, ...]:
    """What about a worker pod can change a reconcile's outcome. Pods emit many updates that
    do not (IPs, timestamps, container start details); the operator wakes only on these."""
    status = pod.get("status") or {}
    scheduled = next((c for c in _conditions(pod) if c.get("type") == "PodScheduled"), {})
    return (
        status.get("phase"),
        has_condition(pod, "Ready"),
        bool((pod.get("metadata") or {}).get("deletionTimestamp")),
        disruption_condition(pod) is not None,
        bool(status.get("podIP")),
        scheduled.get("status"),
        scheduled.get("message"),
        (_terminated(pod) or {}).get("exitCode"),
    )


def job_signal(job: Obj) -> tuple[Any, ...]:
    """The same for a worker Job: its conditions, counts, suspension and deletion."""
    status = job.get("status") or {}
    return (
        tuple(sorted((str(c.get("type")), str(c.get("status"))) for c in _conditions(job))),
        is_suspended(job),
        bool((job.get("metadata") or {}).get("deletionTimestamp")),
        status.get("active"),
        status.get("ready"),
        status.get("succeeded"),
        status.get("failed"),
    )
