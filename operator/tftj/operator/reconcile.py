"""reconcile(observed) -> Plan: the whole decision logic of the operator, as a pure function.

Level-based: from the TFTrainingJob (spec and the status the operator wrote before) and the
children that exist now, compute what to create, patch and delete, the new status, and the
events. Nothing here does I/O, so a crash at any point of applying a plan is safe: the next
reconcile recomputes the same plan from what is there.

Ordering contract with the edge (tftj.operator.kube.apply_plan): the status is written FIRST,
then deletions, creations, patches, events. Every decision that must not be taken twice (a
restart, a suspension) bumps `status.attempt` before the old attempt Job is deleted, so
after a crash the next reconcile sees the new attempt number and never re-creates an old one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from tftj.api import naming
from tftj.api.contract import exit_code_meaning, failure_kind, is_retried
from tftj.api.messages import translate
from tftj.api.models import TFTrainingJobSpec
from tftj.api.resolve import ResolvedParameters, resolve, status_parameters
from tftj.api.validate import validate_spec
from tftj.operator import conditions, kueue
from tftj.operator.children import (
    Obj,
    attempt_job,
    attempt_of,
    static_children,
)
from tftj.operator.status import (
    WorkerFailure,
    first_failure,
    is_suspended,
    job_failed_by_disruption,
    job_failure_condition,
    job_outcome,
    pod_phase,
    pod_ready,
    pods_since_resume,
    unschedulable_message,
)

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Observed:
    """What exists now. `children` maps (kind, name) of the job's long-lived children (see
    children.static_children) to the live object, or is None when the edge did not look
    because it saw them in place moments ago (then they are left alone); `attempt_jobs` and
    `pods` are every worker Job and pod labelled with the job's name, of any attempt."""

    job: Obj
    children: dict[tuple[str, str], Obj] | None
    attempt_jobs: list[Obj]
    pods: list[Obj]
    now: datetime
    progress: dict[str, Any] | None = None
    # Kueue's Workload of the current attempt's Job, read only while Kueue holds that Job
    # suspended (spec.scheduling.queueName): its conditions say why (tftj.operator.kueue).
    workload: Obj | None = None


@dataclass(frozen=True)
class Deletion:
    """A worker Job to delete (the only kind of child the operator ever deletes)."""

    name: str
    # Foreground keeps the Job until its pods are gone, so "old attempt fully stopped" is
    # observable as "the Job no longer exists".
    propagation: str = "Foreground"


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass
class Plan:
    status: Obj | None = None  # the complete new status, None when unchanged
    creates: list[Obj] = field(default_factory=list)
    patches: list[Obj] = field(default_factory=list)  # merge patches with apiVersion/kind/name
    deletions: list[Deletion] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    delete_job: bool = False  # ttlSecondsAfterFinished expired
    requeue_after: float | None = None
    restarted: bool = False  # a whole-group restart was decided (operator metrics)
    # No worker Job may be created yet because workers of an earlier one still exist: a wait
    # that rests on their presence (the edge confirms it on the apiserver now and then).
    waits_for_old_workers: bool = False

    def wake(self, seconds: float) -> None:
        """Ask to be reconciled again within `seconds` (the earliest request wins)."""
        seconds = max(0.0, seconds)
        if self.requeue_after is None or seconds < self.requeue_after:
            self.requeue_after = seconds


@dataclass(frozen=True)
class Timing:
    """How soon to look again when nothing wakes the operator earlier."""

    resync_seconds: float = 30.0
    progress_seconds: float = 10.0
    waiting_seconds: float = 2.0


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_subset(desired: Any, actual: Any) -> bool:
    """Whether every value in `desired` is present and equal in `actual` (the apiserver adds
    defaults, so an equal-as-a-whole check would report drift forever)."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            is_subset(v, actual.get(k)) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(is_subset(d, a) for d, a in zip(desired, actual, strict=True))
        )
    return bool(desired == actual)


# What the operator keeps in line on each long-lived child; other fields are immutable
# (PVC spec, Service clusterIP) or owned by other controllers.
_DRIFT_FIELDS: dict[str, tuple[str, ...]] = {
    "ConfigMap": ("data",),
    "Service": ("spec",),
    "Deployment": ("spec",),
    "PersistentVolumeClaim": (),
}


def drift_patch(desired: Obj, actual: Obj) -> Obj | None:
    """A merge patch bringing `actual` back to `desired`, or None when nothing drifted."""
    patch: Obj = {}
    labels = desired["metadata"].get("labels") or {}
    if not is_subset(labels, actual["metadata"].get("labels") or {}):
        patch["metadata"] = {"labels": labels}
    annotations = desired["metadata"].get("annotations") or {}
    if not is_subset(annotations, actual["metadata"].get("annotations") or {}):
        patch.setdefault("metadata", {})["annotations"] = annotations
    for key in _DRIFT_FIELDS.get(desired["kind"], ()):
        if not is_subset(desired.get(key), actual.get(key)):
            patch[key] = desired[key]
    if not patch:
        return None
    return {
        "apiVersion": desired["apiVersion"],
        "kind": desired["kind"],
        "metadata": {"name": desired["metadata"]["name"], **patch.pop("metadata", {})},
        **patch,
    }


def spec_errors(error: ValidationError) -> str:
    return "; ".join(str(problem) for problem in translate(error, ("spec",)))


def failure_message(failure: WorkerFailure) -> str:
    if failure.exit_code is None:
        text = f"worker {failure.worker_index} failed ({failure.reason})"
    else:
        text = (
            f"worker {failure.worker_index} exited with code {failure.exit_code} "
            f"({exit_code_meaning(failure.exit_code)})"
        )
    return f"{text}: {failure.message}" if failure.message else text


class _Status:
    """The status under construction plus the events its phase transitions imply."""

    def __init__(self, old: Obj, now: datetime, generation: int | None) -> None:
        self.old = old
        self.new: Obj = dict(old)
        self.now = now
        self.now_s = rfc3339(now)
        self.generation = generation
        self.new["observedGeneration"] = generation
        self.conditions: list[Obj] = list(old.get("conditions") or [])
        self.events: list[Event] = []

    def condition(self, type_: str, status: str, reason: str, message: str) -> None:
        old = conditions.find(self.conditions, type_)
        self.conditions = conditions.set_condition(
            self.conditions,
            type_,
            status,
            reason,
            message,
            now=self.now_s,
            generation=self.generation,
        )
        if status == "False" and (old is None or old.get("reason") != reason):
            self.events.append(Event("Warning", reason, message))

    def phase(
        self, phase: str, reason: str, message: str, event: EventType | None = "Normal"
    ) -> None:
        """Set the phase; a change of it is an Event of type `event` (None: the caller posts a
        more telling Event of its own for this transition)."""
        old = conditions.find(self.conditions, phase)
        changed = (
            self.old.get("phase") != phase
            or old is None
            or old.get("status") != "True"
            or old.get("reason") != reason
        )
        self.conditions = conditions.set_phase(
            self.conditions, phase, reason, message, now=self.now_s, generation=self.generation
        )
        self.new["phase"] = phase
        if changed and event is not None:
            self.events.append(Event(event, reason, message))

    def finish(self, phase: str, reason: str, message: str) -> None:
        self.phase(phase, reason, message, "Normal" if phase == "Succeeded" else "Warning")
        if not self.new.get("completionTime"):
            self.new["completionTime"] = self.now_s

    def result(self) -> Obj | None:
        self.new["conditions"] = self.conditions
        return None if self.new == self.old else self.new


def _replica_counts(status: _Status, pods: list[Obj], desired: int) -> None:
    ready = sum(1 for p in pods if pod_ready(p))
    status.new["replicas"] = {
        "desired": desired,
        "ready": ready,
        "succeeded": sum(1 for p in pods if pod_phase(p) == "Succeeded"),
        "failed": sum(1 for p in pods if pod_phase(p) == "Failed"),
    }
    status.new["workers"] = f"{ready}/{desired}"


def _progress(status: _Status, observed: Observed) -> None:
    if observed.progress is None:
        return
    old = dict(status.old.get("progress") or {})
    old.pop("updateTime", None)
    if old != observed.progress:
        status.new["progress"] = {**observed.progress, "updateTime": status.now_s}


def _finished(plan: Plan, status: _Status, spec: TFTrainingJobSpec, observed: Observed) -> None:
    """A Succeeded or Failed job: only the TTL is left to honour."""
    ttl = spec.run_policy.ttl_seconds_after_finished
    done = parse_time(status.new.get("completionTime"))
    if ttl is None or done is None:
        return
    remaining = (done - observed.now).total_seconds() + ttl
    if remaining <= 0:
        plan.delete_job = True
    else:
        plan.wake(remaining)


def _on_failure(
    plan: Plan,
    status: _Status,
    spec: TFTrainingJobSpec,
    attempt: int,
    current: Obj,
    failure: WorkerFailure | None,
) -> None:
    """Gang restart or final failure, decided from the trainer's exit-code table."""
    if failure is None:
        # The Job failed without a failed pod left to read (e.g. a worker pod was deleted).
        cond = job_failure_condition(current) or {}
        failure = WorkerFailure(
            None,
            None,
            str(cond.get("reason") or "JobFailed"),
            str(cond.get("message") or ""),
            disrupted=job_failed_by_disruption(current),
        )
    if failure.disrupted:
        _on_disruption(plan, status, spec, attempt, current, failure)
        return
    kind = failure_kind(failure.exit_code) if failure.exit_code is not None else "Retryable"
    message = failure_message(failure)
    restarts = int(status.old.get("restarts") or 0)
    limit = spec.run_policy.backoff_limit
    status.new["lastFailure"] = {
        "attempt": attempt,
        **({"workerIndex": failure.worker_index} if failure.worker_index is not None else {}),
        **({"exitCode": failure.exit_code} if failure.exit_code is not None else {}),
        "reason": "Evicted" if failure.reason == "Evicted" else kind,
        "message": message,
        "time": status.now_s,
    }
    if kind == "Crashed":
        status.finish(
            "Failed",
            "TrainerCrashed",
            f"{message} (a native crash of the trainer: not retried, it would recur)",
        )
    elif not is_retried(kind):
        status.finish("Failed", "PermanentFailure", f"{message} (a permanent failure: not retried)")
    elif restarts >= limit:
        status.finish(
            "Failed",
            "BackoffLimitExceeded",
            f"{message}; runPolicy.backoffLimit {limit} reached after {restarts} restarts",
        )
    else:
        status.new["restarts"] = restarts + 1
        _restart(
            plan,
            status,
            attempt,
            current,
            "WorkerFailed",
            f"{message}; restarting all {spec.workers.replicas} workers from the latest "
            f"checkpoint as attempt {attempt + 1} (restart {restarts + 1} of {limit})",
        )


def _on_disruption(
    plan: Plan,
    status: _Status,
    spec: TFTrainingJobSpec,
    attempt: int,
    current: Obj,
    failure: WorkerFailure,
) -> None:
    """Kubernetes ended a worker (DisruptionTarget): not the job's fault, so, like a Job's
    podFailurePolicy `Ignore` on DisruptionTarget, the group restarts without being charged
    to runPolicy.backoffLimit; status.disruptions counts these restarts."""
    disruptions = int(status.old.get("disruptions") or 0) + 1
    worker = f"worker {failure.worker_index}" if failure.worker_index is not None else "a worker"
    message = f"{worker} was disrupted ({failure.reason})"
    if failure.message:
        message += f": {failure.message}"
    status.new["disruptions"] = disruptions
    status.new["lastFailure"] = {
        "attempt": attempt,
        **({"workerIndex": failure.worker_index} if failure.worker_index is not None else {}),
        **({"exitCode": failure.exit_code} if failure.exit_code is not None else {}),
        "reason": "Disrupted",
        "message": message,
        "time": status.now_s,
    }
    _restart(
        plan,
        status,
        attempt,
        current,
        "WorkerDisrupted",
        f"{message}; restarting all {spec.workers.replicas} workers from the latest checkpoint "
        f"as attempt {attempt + 1} (disruption {disruptions}; not charged to "
        f"runPolicy.backoffLimit)",
    )


def _restart(
    plan: Plan, status: _Status, attempt: int, current: Obj, reason: str, message: str
) -> None:
    status.new["attempt"] = attempt + 1
    plan.restarted = True
    plan.deletions.append(Deletion(_name(current)))
    status.phase("Restarting", reason, message, "Warning")


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _waiting_phase(status: _Status) -> str:
    restarted = int(status.new.get("restarts") or 0) + int(status.new.get("disruptions") or 0)
    return "Restarting" if restarted > 0 else "Pending"


def _active(
    plan: Plan,
    status: _Status,
    spec: TFTrainingJobSpec,
    attempt: int,
    current: Obj,
    pods: list[Obj],
    workload: Obj | None,
    timing: Timing,
) -> None:
    """The current attempt's Job exists: report how it goes, or act on its end."""
    replicas = spec.workers.replicas
    outcome = job_outcome(current)
    queue = spec.scheduling.queue_name
    if outcome is None and is_suspended(current) and queue:
        # Kueue holds the Job: not admitted yet, or evicted (preempted) after it started.
        # Never unsuspend it; and the workers the Job controller stops on suspension (they
        # end Failed, exit code 143) are not a training failure: nothing is charged to
        # backoffLimit, the same Job resumes from the checkpoint when Kueue admits it again.
        held = kueue.hold(workload, queue, replicas)
        status.phase("Pending", held.reason, held.message)
        status.new.pop("activeStartTime", None)  # queued time is not active time
        plan.wake(timing.resync_seconds)
        return
    # Admitted (or never queued): the deadline counts from here, as a Kubernetes Job's does
    # from its startTime, which the Job controller sets again on every resume.
    status.new.setdefault("activeStartTime", status.now_s)
    # Pods a suspension stopped before the Job was resumed are not this run's workers.
    pods = pods_since_resume(current, pods)
    failure = first_failure(pods)
    if outcome == "Complete":
        status.finish(
            "Succeeded", "TrainingSucceeded", f"all {replicas} workers finished (attempt {attempt})"
        )
        return
    if outcome == "Failed" or failure is not None:
        _on_failure(plan, status, spec, attempt, current, failure)
        return
    ready = sum(1 for p in pods if pod_ready(p))
    # Workers that already finished count as started: between the last worker exiting and
    # the Job controller marking the Job Complete the job is still Running, not Pending.
    finished = sum(1 for p in pods if pod_phase(p) == "Succeeded")
    if ready + finished >= replicas:
        status.phase(
            "Running",
            "AllWorkersRunning",
            f"{ready}/{replicas} workers running (attempt {attempt})",
        )
        plan.wake(timing.progress_seconds)
        return
    unschedulable = unschedulable_message(pods)
    if unschedulable is not None:
        status.phase(_waiting_phase(status), "Unschedulable", unschedulable, "Warning")
    else:
        status.phase(
            _waiting_phase(status),
            "WorkersStarting",
            f"{ready}/{replicas} workers running (attempt {attempt})",
        )
    plan.wake(timing.resync_seconds)


def _spec(job: Obj) -> TFTrainingJobSpec:
    return TFTrainingJobSpec.model_validate(job.get("spec") or {})


@dataclass(frozen=True)
class _Attempt:
    """The attempt the job is on and what is left of the others."""

    number: int
    name: str  # its Job's name
    job: Obj | None  # its Job; None when absent or already being deleted
    pods: list[Obj]
    leftovers: list[Obj]  # Jobs of other attempts, plus this one's while it is deleted
    leftover_pods: list[Obj]


def _attempt(status: _Status, observed: Observed, name: str) -> _Attempt:
    """The highest attempt the status or any Job knows of: a restart decided before a crash
    is never undone by a stale read."""
    number = max(
        [int(status.old.get("attempt") or 0)]
        + [a for a in map(attempt_of, observed.attempt_jobs) if a is not None]
    )
    status.new["attempt"] = number
    job_name = naming.attempt_job_name(name, number)
    current = next((j for j in observed.attempt_jobs if _name(j) == job_name), None)
    leftovers = [j for j in observed.attempt_jobs if attempt_of(j) != number]
    if current is not None and _is_deleting(current):
        leftovers.append(current)
        current = None
    return _Attempt(
        number=number,
        name=job_name,
        job=current,
        pods=[p for p in observed.pods if attempt_of(p) == number],
        leftovers=leftovers,
        leftover_pods=[p for p in observed.pods if attempt_of(p) != number],
    )


def reconcile(observed: Observed, timing: Timing = Timing()) -> Plan:
    """The plan for what `observed` shows.

    Each policy is one step below; a step that ends the decision simply returns. Whichever
    step that is, the status built so far and the events its transitions imply go into the
    plan here, in one place, so no branch can drop part of it.
    """
    job = observed.job
    meta = job["metadata"]
    status = _Status(dict(job.get("status") or {}), observed.now, meta.get("generation"))
    plan = Plan()
    _decide(plan, status, observed, timing)
    plan.status = status.result()
    plan.events = status.events
    return plan


def _decide(plan: Plan, status: _Status, observed: Observed, timing: Timing) -> None:
    job = observed.job
    meta = job["metadata"]
    name, namespace = str(meta["name"]), str(meta.get("namespace") or "")
    try:
        spec = _spec(job)
    except ValidationError as exc:
        _invalid_spec(status, spec_errors(exc))
        return
    resolved = resolve(spec, name=name, namespace=namespace)
    _resolved_status(status, resolved, job.get("spec") or {})
    attempt = _attempt(status, observed, name)
    if _bypassed_rules(plan, status, spec, observed, timing):
        return
    _replica_counts(status, attempt.pods, spec.workers.replicas)
    _progress(status, observed)

    if status.old.get("phase") in conditions.TERMINAL_PHASES:
        _terminal(plan, status, spec, observed)
        return
    _long_lived_children(plan, observed, resolved)
    plan.deletions += [Deletion(_name(j)) for j in attempt.leftovers if not _is_deleting(j)]
    if _deadline(plan, status, spec, attempt, observed.now):
        return
    if spec.run_policy.suspend:
        _suspend(plan, status, attempt)
    elif attempt.job is None:
        _start(plan, status, spec, attempt, job, resolved, timing)
    else:
        _active(
            plan,
            status,
            spec,
            attempt.number,
            attempt.job,
            attempt.pods,
            observed.workload,
            timing,
        )
        if status.new.get("phase") in conditions.TERMINAL_PHASES:
            _finished(plan, status, spec, observed)
    if plan.requeue_after is None:
        plan.wake(timing.resync_seconds)


def _invalid_spec(status: _Status, errors: str) -> None:
    """Only without the webhook (or with an older schema) can this happen: say so in status
    and wait for a fixed spec rather than crash-looping."""
    status.condition(conditions.CREATED, "False", "InvalidSpec", errors)
    if not status.new.get("phase"):
        status.phase("Pending", "InvalidSpec", "the spec is invalid: see the Created condition")


def _bypassed_rules(
    plan: Plan, status: _Status, spec: TFTrainingJobSpec, observed: Observed, timing: Timing
) -> bool:
    """validate()'s cross-field rules, for a job that never started: only the webhook runs
    them at admission, and a spec that got past a bypassed webhook (its registration deleted,
    failurePolicy Ignore) must not start training. A job already running is left alone."""
    if status.old.get("startTime") or observed.attempt_jobs or observed.pods:
        return False
    errors = [str(p) for p in validate_spec(spec) if p.severity == "error"]
    if not errors:
        return False
    _invalid_spec(status, "; ".join(errors))
    plan.wake(timing.resync_seconds)
    return True


def _resolved_status(status: _Status, resolved: ResolvedParameters, stored_spec: Obj) -> None:
    # Only what the stored spec does not show (derived values, task/optimizer defaults):
    # `kubectl describe` prints each value once; params.yaml holds the whole set.
    status.new["resolvedParameters"] = status_parameters(resolved, stored_spec)
    status.new["parametersHash"] = resolved.parameters_hash
    status.new["gpus"] = resolved.derived.total_gpus
    status.new.setdefault("restarts", 0)


def _terminal(plan: Plan, status: _Status, spec: TFTrainingJobSpec, observed: Observed) -> None:
    """A finished job keeps its phase; only leftover workers and the TTL need acting on."""
    if (status.old.get("lastFailure") or {}).get("reason") == "DeadlineExceeded":
        # Stopping the workers may not have happened before a crash: make sure it does.
        plan.deletions += [
            Deletion(_name(j))
            for j in observed.attempt_jobs
            if job_outcome(j) is None and not _is_deleting(j)
        ]
    _finished(plan, status, spec, observed)


def _long_lived_children(plan: Plan, observed: Observed, resolved: ResolvedParameters) -> None:
    """Create the missing ConfigMap/Service/... and patch the drifted ones."""
    existing = observed.children
    if existing is None:
        return  # not looked at this time: the edge saw them in place moments ago
    for desired in static_children(observed.job, resolved):
        actual = existing.get((desired["kind"], desired["metadata"]["name"]))
        if actual is None:
            plan.creates.append(desired)
        elif (patch := drift_patch(desired, actual)) is not None:
            plan.patches.append(patch)


def _deadline(
    plan: Plan, status: _Status, spec: TFTrainingJobSpec, attempt: _Attempt, now: datetime
) -> bool:
    """runPolicy.activeDeadlineSeconds: whether it has passed (then the job failed). It counts
    from status.activeStartTime: the first start, then each resume; time suspended or queued
    in Kueue does not count (Kubernetes Job semantics)."""
    deadline = spec.run_policy.active_deadline_seconds
    started = parse_time(status.new.get("activeStartTime"))
    if deadline is None or started is None:
        return False
    left = (started - now).total_seconds() + deadline
    if left > 0:
        plan.wake(left)
        return False
    if attempt.job is not None:
        plan.deletions.append(Deletion(attempt.name))
    # Workers that never got a node: say why, or the user only learns that time ran out.
    unschedulable = unschedulable_message(attempt.pods)
    waiting = f"; workers were still unschedulable: {unschedulable}" if unschedulable else ""
    status.new["lastFailure"] = {
        "attempt": attempt.number,
        "reason": "DeadlineExceeded",
        "message": f"runPolicy.activeDeadlineSeconds ({deadline}s) passed since the job "
        "started running (or last resumed)" + waiting,
        "time": status.now_s,
    }
    status.finish(
        "Failed",
        "DeadlineExceeded",
        f"the job ran longer than runPolicy.activeDeadlineSeconds ({deadline}s); "
        f"all workers were stopped{waiting}",
    )
    return True


def _suspend(plan: Plan, status: _Status, attempt: _Attempt) -> None:
    """runPolicy.suspend: stop the group; it resumes from the latest checkpoint later."""
    status.new.pop("activeStartTime", None)  # suspended time is not active time
    if attempt.job is None:
        status.phase(
            "Suspended",
            "Suspended",
            "runPolicy.suspend is true: no workers run until it is set back to false",
        )
        return
    # A fresh attempt number on resume keeps the stopped group and the resumed one apart.
    status.new["attempt"] = attempt.number + 1
    plan.deletions.append(Deletion(attempt.name))
    status.phase(
        "Suspended",
        "Suspended",
        "runPolicy.suspend is true: all workers were stopped; they resume from the latest "
        "checkpoint when it is set back to false",
    )


def _start(
    plan: Plan,
    status: _Status,
    spec: TFTrainingJobSpec,
    attempt: _Attempt,
    job: Obj,
    resolved: ResolvedParameters,
    timing: Timing,
) -> None:
    """No Job for this attempt: create it once every earlier worker is gone (two groups must
    never train at once: they would write the same checkpoints). That includes pods of this
    very attempt whose Job was deleted behind the operator's back: they still run until the
    garbage collector gets to them, under the host names the new Job's pods would take."""
    replicas = spec.workers.replicas
    stopping = attempt.leftover_pods + attempt.pods
    if attempt.leftovers or stopping:
        status.phase(
            _waiting_phase(status),
            "StoppingPreviousAttempt",
            f"waiting for {len(stopping)} worker pod(s) of an earlier worker Job to stop "
            f"before starting attempt {attempt.number}",
        )
        plan.waits_for_old_workers = True
        plan.wake(timing.waiting_seconds)
        return
    plan.creates.append(attempt_job(job, resolved, attempt.number))
    status.new.setdefault("startTime", status.now_s)
    if spec.scheduling.queue_name is None:
        # Runs at once; a queued Job is active only once Kueue admits it (see _active).
        status.new.setdefault("activeStartTime", status.now_s)
    status.condition(
        conditions.CREATED,
        "True",
        "WorkersCreated",
        f"created Job {attempt.name} with {replicas} workers",
    )
    status.events.append(
        Event(
            "Normal",
            "AttemptCreated",
            f"created Job {attempt.name}: attempt {attempt.number} with {replicas} workers",
        )
    )
    # AttemptCreated above says it all: an Event for "0/N workers running" as well would be
    # one more write per job for the apiserver and one more line in `kubectl describe`.
    status.phase(
        _waiting_phase(status),
        "WorkersStarting",
        f"0/{replicas} workers running (attempt {attempt.number})",
        event=None,
    )
    plan.wake(timing.waiting_seconds)
