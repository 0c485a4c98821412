"""The reconcile core, driven through a job's life with hand-made observed states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from tftj.api.contract import ENV_ATTEMPT, ENV_WORKER_HOSTS, ExitCode
from tftj.operator.children import KUEUE_QUEUE_LABEL, LABEL_ATTEMPT, LABEL_JOB_NAME
from tftj.operator.reconcile import Observed, Plan, reconcile, rfc3339
from tftj.operator.status import INDEX_ANNOTATION

NOW = datetime(2026, 11, 28, 4, 0, 0, tzinfo=UTC)


def make_job(
    spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "tftj.dev/v1alpha1",
        "kind": "TFTrainingJob",
        "metadata": {
            "name": "mnist",
            "namespace": "ml",
            "uid": "u-1",
            "generation": 1,
            "resourceVersion": "7",
        },
        "spec": {
            "data": {"format": "synthetic"},
            "workers": {"replicas": 2, "gpusPerWorker": 1},
            **(spec or {}),
        },
    }
    if status is not None:
        body["status"] = status
    return body


def pod(
    attempt: int, index: int, phase: str = "Running", ready: bool = True, **extra: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "podIP": f"127.1.0.{index + 1}",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    status.update(extra)
    return {
        "metadata": {
            "name": f"mnist-a{attempt}-{index}-x",
            "labels": {LABEL_JOB_NAME: "mnist", LABEL_ATTEMPT: str(attempt)},
            "annotations": {INDEX_ANNOTATION: str(index)},
        },
        "status": status,
    }


def failed_pod(attempt: int, index: int, code: int, message: str = "") -> dict[str, Any]:
    return pod(
        attempt,
        index,
        "Failed",
        False,
        containerStatuses=[
            {
                "name": "trainer",
                "state": {
                    "terminated": {"exitCode": code, "message": message, "finishedAt": rfc3339(NOW)}
                },
            }
        ],
    )


def batch_job(attempt: int, condition: str | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"mnist-a{attempt}",
            "labels": {LABEL_JOB_NAME: "mnist", LABEL_ATTEMPT: str(attempt)},
        },
        "spec": spec,
        "status": {
            "conditions": [{"type": condition, "status": "True", "reason": "X"}]
            if condition
            else []
        },
    }


def step(
    job: dict[str, Any],
    jobs: list[Any] = (),
    pods: list[Any] = (),
    now: datetime = NOW,
    children: bool = True,
    **kw: Any,
) -> Plan:
    """Reconcile once; write the plan's status back into `job` as the edge would."""
    kids: dict[tuple[str, str], Any] = {}
    if children:
        first = reconcile(
            Observed(job=job, children={}, attempt_jobs=list(jobs), pods=list(pods), now=now)
        )
        kids = {(c["kind"], c["metadata"]["name"]): c for c in first.creates if c["kind"] != "Job"}
    plan = reconcile(
        Observed(job=job, children=kids, attempt_jobs=list(jobs), pods=list(pods), now=now, **kw)
    )
    assert_transitions_announced(job.get("status") or {}, plan)
    if plan.status is not None:
        job["status"] = plan.status
    return plan


def _phase(status: dict[str, Any]) -> tuple[Any, Any]:
    phase = status.get("phase")
    held = [c for c in status.get("conditions") or [] if c["type"] == phase]
    return phase, held[0].get("reason") if held else None


def assert_transitions_announced(old: dict[str, Any], plan: Plan) -> None:
    """Every phase change, and every condition turning False, comes with its event: whichever
    branch of reconcile() decided it, the plan carries the events with the status."""
    if plan.status is None:
        return
    reasons = {e.reason for e in plan.events}
    phase, reason = _phase(plan.status)
    if (phase, reason) != _phase(old):
        # Workers starting because a worker Job was created just now: AttemptCreated says so.
        started = any(c["kind"] == "Job" for c in plan.creates)
        announced = "AttemptCreated" if reason == "WorkersStarting" and started else reason
        assert announced in reasons, f"phase {phase} ({reason}) without an event: {plan.events}"
    created = _condition(plan.status, "Created")
    if created.get("status") == "False" and created.get("reason") != _condition(old, "Created").get(
        "reason"
    ):
        assert created["reason"] in reasons, f"Created={created['reason']} without an event"


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def condition(job: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in job["status"]["conditions"] if c["type"] == type_)


def test_first_reconcile_creates_children_with_owner_and_status() -> None:
    job = make_job()
    plan = step(job, children=False)
    kinds = [c["kind"] for c in plan.creates]
    assert kinds == ["ConfigMap", "Service", "Job"]
    for child in plan.creates:
        ref = child["metadata"]["ownerReferences"][0]
        assert ref["controller"] and ref["blockOwnerDeletion"] and ref["uid"] == "u-1"
        assert child["metadata"]["labels"][LABEL_JOB_NAME] == "mnist"
    params = yaml.safe_load(plan.creates[0]["data"]["params.yaml"])
    assert params["parametersHash"] == job["status"]["parametersHash"]
    assert job["status"]["phase"] == "Pending"
    assert job["status"]["startTime"] == rfc3339(NOW)
    assert job["status"]["workers"] == "0/2"
    assert job["status"]["gpus"] == 2
    # One Event for the start: "0/2 workers running" would repeat it in `kubectl describe`.
    assert [e.reason for e in plan.events] == ["AttemptCreated"]


def test_worker_job_shape() -> None:
    plan = step(make_job({"scheduling": {"queueName": "team-a"}}), children=False)
    wjob = plan.creates[-1]
    spec = wjob["spec"]
    assert (
        spec["completionMode"],
        spec["completions"],
        spec["parallelism"],
        spec["backoffLimit"],
    ) == ("Indexed", 2, 2, 0)
    assert wjob["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "team-a"
    assert "suspend" not in spec  # Kueue's to decide
    pod_spec = spec["template"]["spec"]
    assert pod_spec["subdomain"] == "mnist-workers" and pod_spec["restartPolicy"] == "Never"
    container = pod_spec["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[ENV_WORKER_HOSTS] == "mnist-a0-0.mnist-workers:2222,mnist-a0-1.mnist-workers:2222"
    assert env[ENV_ATTEMPT] == "0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert {"name": "tftj-params", "mountPath": "/etc/tftj", "readOnly": True} in container[
        "volumeMounts"
    ]


def test_second_reconcile_is_a_no_op() -> None:
    job = make_job()
    plan = step(job, children=False)
    created = [c for c in plan.creates]
    kids = {(c["kind"], c["metadata"]["name"]): c for c in created if c["kind"] != "Job"}
    jobs = [c for c in created if c["kind"] == "Job"]
    again = reconcile(Observed(job=job, children=kids, attempt_jobs=jobs, pods=[], now=NOW))
    assert again.creates == [] and again.patches == [] and again.deletions == []
    assert again.status is None and again.events == []


def test_running_then_succeeded() -> None:
    job = make_job()
    step(job)
    step(job, [batch_job(0)], [pod(0, 0), pod(0, 1)])
    assert job["status"]["phase"] == "Running" and job["status"]["workers"] == "2/2"
    plan = step(
        job,
        [batch_job(0, "Complete")],
        [pod(0, 0, "Succeeded", False), pod(0, 1, "Succeeded", False)],
    )
    assert job["status"]["phase"] == "Succeeded"
    assert condition(job, "Succeeded")["status"] == "True"
    assert condition(job, "Running")["status"] == "False"
    assert job["status"]["completionTime"] == rfc3339(NOW)
    assert any(e.reason == "TrainingSucceeded" for e in plan.events)


def test_retryable_failure_restarts_the_whole_group() -> None:
    job = make_job()
    step(job)
    plan = step(job, [batch_job(0)], [pod(0, 0), failed_pod(0, 1, ExitCode.PEER_LOST, "peer gone")])
    status = job["status"]
    assert (status["phase"], status["attempt"], status["restarts"]) == ("Restarting", 1, 1)
    assert status["lastFailure"]["workerIndex"] == 1 and status["lastFailure"]["exitCode"] == 10
    assert status["lastFailure"]["reason"] == "Retryable"
    assert [d.name for d in plan.deletions] == ["mnist-a0"]
    assert plan.restarted
    # Old pods still there: wait, do not create attempt 1.
    plan = step(job, [], [pod(0, 0)])
    assert not [c for c in plan.creates if c["kind"] == "Job"]
    assert condition(job, "Restarting")["reason"] == "StoppingPreviousAttempt"
    # Old pods gone: attempt 1 is created.
    plan = step(job, [], [])
    created = [c for c in plan.creates if c["kind"] == "Job"]
    assert [c["metadata"]["name"] for c in created] == ["mnist-a1"]


def test_restart_decision_is_idempotent_on_a_stale_read() -> None:
    job = make_job()
    step(job)
    before = dict(job)
    failed = [pod(0, 0), failed_pod(0, 1, 10)]
    a = reconcile(
        Observed(job=before, children={}, attempt_jobs=[batch_job(0)], pods=failed, now=NOW)
    )
    b = reconcile(
        Observed(job=before, children={}, attempt_jobs=[batch_job(0)], pods=failed, now=NOW)
    )
    assert a.status == b.status and a.status is not None and a.status["restarts"] == 1


def test_permanent_failure_fails_the_job() -> None:
    job = make_job()
    step(job)
    step(
        job,
        [batch_job(0)],
        [pod(0, 0), failed_pod(0, 1, ExitCode.BAD_DATA, "label 12 out of range")],
    )
    status = job["status"]
    assert status["phase"] == "Failed"
    assert condition(job, "Failed")["reason"] == "PermanentFailure"
    assert "label 12 out of range" in status["lastFailure"]["message"]
    assert "BAD_DATA" in condition(job, "Failed")["message"]


@pytest.mark.parametrize(("code", "signal_name"), [(134, "SIGABRT"), (139, "SIGSEGV")])
def test_native_crash_fails_the_job_naming_the_signal_without_retrying(
    code: int, signal_name: str
) -> None:
    job = make_job({"runPolicy": {"backoffLimit": 3}})
    step(job)
    plan = step(job, [batch_job(0)], [pod(0, 0), failed_pod(0, 1, code, "Fatal Python error")])
    status = job["status"]
    assert (status["phase"], status["restarts"]) == ("Failed", 0)
    assert not plan.restarted
    last = status["lastFailure"]
    assert (last["reason"], last["exitCode"], last["workerIndex"]) == ("Crashed", code, 1)
    assert signal_name in last["message"] and "crashed" in last["message"]
    failed = condition(job, "Failed")
    assert failed["reason"] == "TrainerCrashed" and signal_name in failed["message"]


def test_sigkill_is_retried_and_named() -> None:
    job = make_job()
    step(job)
    step(job, [batch_job(0)], [pod(0, 0), failed_pod(0, 1, 137)])
    status = job["status"]
    assert (status["phase"], status["restarts"]) == ("Restarting", 1)
    assert status["lastFailure"]["reason"] == "Retryable"
    assert "SIGKILL" in status["lastFailure"]["message"]


def test_backoff_limit_exhausted() -> None:
    job = make_job({"runPolicy": {"backoffLimit": 1}})
    step(job)
    step(job, [batch_job(0)], [failed_pod(0, 0, 137)])
    assert job["status"]["restarts"] == 1
    step(job, [], [])
    step(job, [batch_job(1)], [failed_pod(1, 0, 137)])
    assert job["status"]["phase"] == "Failed"
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"


def test_suspend_and_resume_use_a_fresh_attempt() -> None:
    job = make_job()
    step(job)
    step(job, [batch_job(0)], [pod(0, 0), pod(0, 1)])
    job["spec"]["runPolicy"] = {"suspend": True}
    plan = step(job, [batch_job(0)], [pod(0, 0), pod(0, 1)])
    assert job["status"]["phase"] == "Suspended" and job["status"]["attempt"] == 1
    assert job["status"]["restarts"] == 0
    assert [d.name for d in plan.deletions] == ["mnist-a0"]
    plan = step(job, [], [])
    assert job["status"]["phase"] == "Suspended" and not [
        c for c in plan.creates if c["kind"] == "Job"
    ]
    job["spec"]["runPolicy"] = {"suspend": False}
    plan = step(job, [], [])
    assert [c["metadata"]["name"] for c in plan.creates if c["kind"] == "Job"] == ["mnist-a1"]


def test_deadline_stops_workers() -> None:
    job = make_job({"runPolicy": {"activeDeadlineSeconds": 60}})
    step(job)
    plan = step(job, [batch_job(0)], [pod(0, 0), pod(0, 1)], now=NOW + timedelta(seconds=61))
    assert job["status"]["phase"] == "Failed"
    assert condition(job, "Failed")["reason"] == "DeadlineExceeded"
    assert [d.name for d in plan.deletions] == ["mnist-a0"]


def test_deadline_counts_from_the_latest_resume_not_while_suspended() -> None:
    # Kubernetes Job semantics: suspension stops the clock, a resume starts it again.
    job = make_job({"runPolicy": {"activeDeadlineSeconds": 60}})
    step(job)
    step(job, [batch_job(0)], [pod(0, 0), pod(0, 1)], now=NOW + timedelta(seconds=30))
    job["spec"]["runPolicy"]["suspend"] = True
    step(job, [batch_job(0)], [pod(0, 0), pod(0, 1)], now=NOW + timedelta(seconds=40))
    assert "activeStartTime" not in job["status"]
    step(job, [], [], now=NOW + timedelta(seconds=500))
    assert job["status"]["phase"] == "Suspended"
    job["spec"]["runPolicy"]["suspend"] = False
    step(job, [], [], now=NOW + timedelta(seconds=600))
    assert job["status"]["activeStartTime"] == rfc3339(NOW + timedelta(seconds=600))
    running = [pod(1, 0), pod(1, 1)]
    step(job, [batch_job(1)], running, now=NOW + timedelta(seconds=659))
    assert job["status"]["phase"] == "Running"
    step(job, [batch_job(1)], running, now=NOW + timedelta(seconds=661))
    assert condition(job, "Failed")["reason"] == "DeadlineExceeded"


def test_deadline_does_not_count_time_queued_in_kueue() -> None:
    job = make_job({"runPolicy": {"activeDeadlineSeconds": 60}, "scheduling": {"queueName": "q"}})
    step(job)
    assert "activeStartTime" not in job["status"]
    step(job, [batch_job(0, suspend=True)], [], now=NOW + timedelta(seconds=300))
    assert job["status"]["phase"] == "Pending" and "activeStartTime" not in job["status"]
    admitted = NOW + timedelta(seconds=400)
    step(job, [batch_job(0, suspend=False)], [pod(0, 0), pod(0, 1)], now=admitted)
    assert job["status"]["phase"] == "Running"
    assert job["status"]["activeStartTime"] == rfc3339(admitted)
    plan = step(job, [batch_job(0)], [pod(0, 0), pod(0, 1)], now=admitted + timedelta(seconds=61))
    assert condition(job, "Failed")["reason"] == "DeadlineExceeded"
    assert [d.name for d in plan.deletions] == ["mnist-a0"]


def test_ttl_deletes_a_finished_job() -> None:
    job = make_job({"runPolicy": {"ttlSecondsAfterFinished": 30}})
    step(job)
    step(job, [batch_job(0, "Complete")], [])
    plan = step(job, [batch_job(0, "Complete")], [], now=NOW + timedelta(seconds=10))
    assert not plan.delete_job and plan.requeue_after == pytest.approx(20)
    plan = step(job, [batch_job(0, "Complete")], [], now=NOW + timedelta(seconds=31))
    assert plan.delete_job


def test_unschedulable_reason_is_copied() -> None:
    job = make_job()
    step(job)
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    pending = pod(0, 0, "Pending", False)
    pending["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
    ]
    plan = step(job, [batch_job(0)], [pending])
    assert condition(job, "Pending") == {
        **condition(job, "Pending"),
        "reason": "Unschedulable",
        "message": message,
    }
    assert any(e.message == message and e.type == "Warning" for e in plan.events)


def test_kueue_suspended_job_is_reported_queued_and_left_alone() -> None:
    job = make_job({"scheduling": {"queueName": "team-a"}})
    step(job)
    plan = step(job, [batch_job(0, suspend=True)], [])
    assert condition(job, "Pending")["reason"] == "Queued"
    assert plan.patches == [] and plan.deletions == []


def _workload(*conditions: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "job-mnist-a0-1a2b3"}, "status": {"conditions": list(conditions)}}


def test_kueue_pending_message_is_in_the_status() -> None:
    job = make_job({"scheduling": {"queueName": "team-a"}})
    step(job)
    quota = "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu"
    wl = _workload({"type": "QuotaReserved", "status": "False", "message": quota})
    step(job, [batch_job(0, suspend=True)], [], workload=wl)
    pending = condition(job, "Pending")
    assert pending["reason"] == "Queued"
    assert quota in pending["message"] and "job-mnist-a0-1a2b3" in pending["message"]


def test_kueue_preemption_is_not_a_failure() -> None:
    """Kueue suspends a running worker Job to preempt it: the Job controller stops the
    workers (Failed, exit code 143). That is neither a restart nor a failure: the job is
    queued again, and the same Job resumes when Kueue admits it."""
    job = make_job({"scheduling": {"queueName": "team-a"}})
    step(job)
    step(job, [batch_job(0)], [pod(0, 0), pod(0, 1)])
    assert job["status"]["phase"] == "Running"
    evicted = {
        "type": "Evicted",
        "status": "True",
        "reason": "Preempted",
        "message": "Preempted to accommodate a workload due to prioritization in the ClusterQueue",
    }
    stopped = [failed_pod(0, 0, 143), failed_pod(0, 1, 143)]
    plan = step(job, [batch_job(0, suspend=True)], stopped, workload=_workload(evicted))
    pending = condition(job, "Pending")
    assert job["status"]["phase"] == "Pending" and pending["reason"] == "Preempted"
    assert "Preempted to accommodate" in pending["message"]
    assert plan.deletions == [] and not plan.restarted
    assert job["status"]["restarts"] == 0 and "lastFailure" not in job["status"]

    # Resumed: the stopped pods (deleted, created before the suspension) may linger; they are
    # not failures, also while the Job's Suspended condition still says True.
    for old in stopped:
        old["metadata"]["creationTimestamp"] = rfc3339(NOW - timedelta(minutes=5))
        old["metadata"]["deletionTimestamp"] = rfc3339(NOW - timedelta(minutes=1))
    fresh = [pod(0, 0), pod(0, 1)]
    for new in fresh:
        new["metadata"]["creationTimestamp"] = rfc3339(NOW + timedelta(seconds=1))
    for suspended, changed in (("True", NOW - timedelta(minutes=1)), ("False", NOW)):
        resumed = batch_job(0)
        resumed["status"]["conditions"] = [
            {"type": "Suspended", "status": suspended, "lastTransitionTime": rfc3339(changed)}
        ]
        for pods in ([], fresh):
            plan = step(job, [resumed], stopped + pods)
            assert not plan.restarted and plan.deletions == []
            assert "lastFailure" not in job["status"]
        assert job["status"]["phase"] == "Running"
    # A worker that fails in the resumed run is a failure as always.
    plan = step(job, [resumed], [*stopped, failed_pod(0, 0, 1), fresh[1]])
    assert plan.restarted and job["status"]["lastFailure"]["exitCode"] == 1


def test_progress_lands_in_status() -> None:
    job = make_job()
    step(job)
    progress = {"epoch": 2, "totalEpochs": 10, "step": 200, "loss": 0.5, "metrics": {}}
    step(job, [batch_job(0)], [pod(0, 0), pod(0, 1)], progress=progress)
    assert job["status"]["progress"]["epoch"] == 2
    assert job["status"]["progress"]["updateTime"] == rfc3339(NOW)


def test_invalid_spec_is_reported_not_raised() -> None:
    job = make_job({"training": {"learningRate": -1}})
    plan = step(job, children=False)
    assert plan.creates == []
    created = condition(job, "Created")
    assert created["status"] == "False" and "spec.training.learningRate" in created["message"]
    assert "must be > 0" in created["message"]  # the same words as tftj validate


def test_cross_field_rule_stops_a_job_that_bypassed_the_webhook() -> None:
    # requests above limits passes the schema and the CRD's CEL: only validate()'s cross-field
    # rules refuse it, and without the webhook only the operator runs them.
    resources = {"requests": {"cpu": "4"}, "limits": {"cpu": "2"}}
    job = make_job({"workers": {"replicas": 2, "gpusPerWorker": 1, "resources": resources}})
    plan = step(job, children=False)
    assert plan.creates == []
    created = condition(job, "Created")
    assert created["status"] == "False" and created["reason"] == "InvalidSpec"
    assert "spec.workers.resources.requests.cpu: must not exceed limits.cpu" in created["message"]


def test_invalid_spec_is_announced_once_as_a_warning() -> None:
    job = make_job({"training": {"learningRate": -1}})
    plan = step(job, children=False)
    warnings = [e for e in plan.events if e.type == "Warning" and e.reason == "InvalidSpec"]
    assert warnings and "spec.training.learningRate" in warnings[0].message
    assert step(job, children=False).events == []  # unchanged: nothing new to say
    job["spec"]["training"]["learningRate"] = 0.01
    plan = step(job, children=False)
    assert any(e.reason == "AttemptCreated" for e in plan.events)
    assert condition(job, "Created")["status"] == "True"


def test_children_not_observed_are_left_alone() -> None:
    job = make_job()
    step(job)
    plan = reconcile(
        Observed(job=job, children=None, attempt_jobs=[batch_job(0)], pods=[], now=NOW)
    )
    assert plan.creates == [] and plan.patches == []


def test_finished_workers_keep_the_job_running_until_the_job_completes() -> None:
    job = make_job()
    step(job)
    step(job, [batch_job(0)], [pod(0, 0), pod(0, 1)])
    step(job, [batch_job(0)], [pod(0, 0, "Succeeded", False), pod(0, 1)])
    assert job["status"]["phase"] == "Running"


def test_a_worker_job_deleted_by_someone_else_is_replaced_after_its_pods() -> None:
    job = make_job()
    step(job)
    step(job, [batch_job(0)], [pod(0, 0), pod(0, 1)])
    # `kubectl delete job mnist-a0`: the Job is gone, its pods still run until the GC gets there.
    plan = step(job, [], [pod(0, 0), pod(0, 1)])
    assert not [c for c in plan.creates if c["kind"] == "Job"]
    assert condition(job, job["status"]["phase"])["reason"] == "StoppingPreviousAttempt"
    plan = step(job, [], [])
    assert [c["metadata"]["name"] for c in plan.creates if c["kind"] == "Job"] == ["mnist-a0"]


def evicted_pod(attempt: int, index: int) -> dict[str, Any]:
    failed = failed_pod(attempt, index, 143)
    failed["status"]["conditions"].append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting",
        }
    )
    return failed


def test_a_disruption_restarts_the_group_without_charging_backoff_limit() -> None:
    job = make_job({"runPolicy": {"backoffLimit": 0}})
    step(job)
    plan = step(job, [batch_job(0)], [pod(0, 0), evicted_pod(0, 1)])
    status = job["status"]
    assert (status["phase"], status["attempt"]) == ("Restarting", 1)
    assert (status["restarts"], status["disruptions"]) == (0, 1)
    last = status["lastFailure"]
    assert last["reason"] == "Disrupted" and "EvictionByEvictionAPI" in last["message"]
    assert condition(job, "Restarting")["reason"] == "WorkerDisrupted"
    assert "not charged to runPolicy.backoffLimit" in condition(job, "Restarting")["message"]
    assert [d.name for d in plan.deletions] == ["mnist-a0"] and plan.restarted


def test_the_workers_a_disruption_stops_in_the_same_second_are_not_charged() -> None:
    # Worker 1 evicted; the Job's FailJob rule stops worker 0, which ends 143 in the same
    # second (finishedAt has seconds): the disruption is the cause, nothing is charged.
    job = make_job({"runPolicy": {"backoffLimit": 0}})
    step(job)
    step(job, [batch_job(0)], [failed_pod(0, 0, 143), evicted_pod(0, 1)])
    status = job["status"]
    assert (status["attempt"], status["restarts"], status["disruptions"]) == (1, 0, 1)
    assert status["lastFailure"]["reason"] == "Disrupted"


@pytest.mark.parametrize(
    ("cause", "consequence"),
    [
        (137, 143),  # worker 1 OOM-killed; its Job terminates worker 0
        (ExitCode.BAD_DATA, ExitCode.PREEMPTED),  # worker 0 stopped cleanly on SIGTERM
        (ExitCode.BAD_DATA, ExitCode.PEER_LOST),  # worker 0's collective lost its peer
    ],
)
def test_the_worker_that_failed_is_reported_not_the_one_stopped_in_the_same_second(
    cause: int, consequence: int
) -> None:
    # finishedAt has whole seconds: both end "at once", and worker 0 sorts first by index.
    job = make_job({"runPolicy": {"backoffLimit": 1}})
    step(job)
    step(job, [batch_job(0)], [failed_pod(0, 0, consequence), failed_pod(0, 1, cause)])
    last = job["status"]["lastFailure"]
    assert (last["workerIndex"], last["exitCode"]) == (1, cause)
    permanent = cause == ExitCode.BAD_DATA
    assert job["status"]["phase"] == ("Failed" if permanent else "Restarting")


def test_a_worker_stranded_on_a_not_ready_node_is_a_disruption_before_it_ends() -> None:
    # Taint eviction on a NotReady node: DisruptionTarget and deletion, but no kubelet will
    # ever report the pod Failed. The restart is decided now and waits for the pods to go.
    job = make_job({"runPolicy": {"backoffLimit": 0}})
    step(job)
    stranded = pod(0, 1)
    stranded["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:05Z"
    stranded["status"]["conditions"].append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
        }
    )
    plan = step(job, [batch_job(0)], [pod(0, 0), stranded])
    assert (job["status"]["attempt"], job["status"]["restarts"]) == (1, 0)
    assert job["status"]["disruptions"] == 1
    assert "DeletionByTaintManager" in job["status"]["lastFailure"]["message"]
    assert [d.name for d in plan.deletions] == ["mnist-a0"]
    plan = step(job, [], [pod(0, 0), stranded])
    assert not [c for c in plan.creates if c["kind"] == "Job"], "never next to live old pods"
    assert condition(job, job["status"]["phase"])["reason"] == "StoppingPreviousAttempt"
    # Only deletion without DisruptionTarget (e.g. a Job's own cleanup) is not a disruption.
    job = make_job()
    step(job)
    deleting = pod(0, 1)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:05Z"
    step(job, [batch_job(0)], [pod(0, 0), deleting])
    assert job["status"].get("disruptions", 0) == 0 and job["status"]["attempt"] == 0


def test_a_job_failed_by_its_disruption_rule_is_a_disruption_even_without_pods() -> None:
    # Node deleted: PodGC removed the pods; the Job's podFailurePolicy condition remains.
    job = make_job()
    step(job)
    failed_job = batch_job(0, "Failed")
    failed_job["status"]["conditions"][0].update(
        reason="PodFailurePolicy",
        message="Pod ns/mnist-a0-1-x has condition DisruptionTarget matching FailJob rule at index 0",
    )
    step(job, [failed_job], [])
    assert (job["status"]["restarts"], job["status"]["disruptions"]) == (0, 1)


def test_deadline_while_unschedulable_says_why() -> None:
    job = make_job({"runPolicy": {"activeDeadlineSeconds": 60}})
    step(job)
    waiting = pod(0, 0, "Pending", False)
    waiting["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        }
    ]
    step(job, [batch_job(0)], [waiting], now=NOW + timedelta(seconds=61))
    assert job["status"]["phase"] == "Failed"
    assert "Insufficient nvidia.com/gpu" in job["status"]["lastFailure"]["message"]
    assert "Insufficient nvidia.com/gpu" in condition(job, "Failed")["message"]
