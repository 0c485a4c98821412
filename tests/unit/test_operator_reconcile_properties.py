"""reconcile() over random observed states (hypothesis): whatever mix of status, attempt Jobs
and worker pods the edge reads, the plan is one a controller can apply safely.

The hand-made scenarios in test_operator_reconcile walk a job's life; these draw states no
one would write down (stale attempts, half-deleted Jobs, pods of three attempts at once, an
expired deadline while suspended, ...) and check the invariants every branch must keep.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_operator_reconcile import (
    NOW,
    assert_transitions_announced,
    batch_job,
    failed_pod,
    make_job,
    pod,
)
from tftj.api import naming
from tftj.operator.children import attempt_of
from tftj.operator.conditions import TERMINAL_PHASES
from tftj.operator.reconcile import Observed, reconcile, rfc3339

PHASES = [None, "Pending", "Running", "Restarting", "Suspended", "Succeeded", "Failed"]
EXIT_CODES = [0, 1, 2, 10, 11, 12, 134, 137, 139, 143]


@st.composite
def observed_states(draw: st.DrawFn) -> Observed:
    run_policy: dict[str, Any] = {
        "suspend": draw(st.booleans()),
        "backoffLimit": draw(st.integers(0, 3)),
    }
    if draw(st.booleans()):
        run_policy["activeDeadlineSeconds"] = draw(st.sampled_from([30, 600]))
    if draw(st.booleans()):
        run_policy["ttlSecondsAfterFinished"] = draw(st.sampled_from([0, 60]))
    spec: dict[str, Any] = {
        "workers": {"replicas": draw(st.integers(1, 3)), "gpusPerWorker": 1},
        "runPolicy": run_policy,
    }
    if draw(st.booleans()):
        spec["scheduling"] = {"queueName": "team-a"}
    status: dict[str, Any] | None = None
    if draw(st.booleans()):
        phase = draw(st.sampled_from(PHASES))
        status = {
            "attempt": draw(st.integers(0, 3)),
            "restarts": draw(st.integers(0, 3)),
            **({"phase": phase} if phase else {}),
        }
        if draw(st.booleans()):
            status["startTime"] = rfc3339(NOW - timedelta(seconds=draw(st.integers(0, 900))))
        if phase in TERMINAL_PHASES:
            status["completionTime"] = rfc3339(NOW - timedelta(seconds=30))
            if draw(st.booleans()):
                status["lastFailure"] = {"attempt": 0, "reason": "DeadlineExceeded"}
    job = make_job(spec, status)

    jobs = []
    for attempt in draw(st.sets(st.integers(0, 4), max_size=3)):
        condition = draw(st.sampled_from([None, None, "Complete", "Failed"]))
        worker_job = batch_job(attempt, condition, suspend=draw(st.booleans()))
        if draw(st.integers(0, 4)) == 0:
            worker_job["metadata"]["deletionTimestamp"] = rfc3339(NOW)
        jobs.append(worker_job)
    pods = []
    for attempt, index in draw(st.sets(st.tuples(st.integers(0, 4), st.integers(0, 2)))):
        kind = draw(st.sampled_from(["Running", "Pending", "Succeeded", "NotReady", "Failed"]))
        if kind == "Failed":
            pods.append(failed_pod(attempt, index, draw(st.sampled_from(EXIT_CODES))))
        elif kind == "NotReady":
            pods.append(pod(attempt, index, "Running", ready=False))
        else:
            pods.append(pod(attempt, index, kind, ready=kind == "Running"))
    progress = draw(st.none() | st.just({"epoch": 1, "totalEpochs": 3, "step": 5, "metrics": {}}))
    return Observed(
        job=job,
        children=draw(st.sampled_from([{}, None])),
        attempt_jobs=jobs,
        pods=pods,
        now=NOW + timedelta(seconds=draw(st.integers(0, 120))),
        progress=progress,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(observed_states())
def test_every_plan_keeps_the_controller_invariants(observed: Observed) -> None:
    old: dict[str, Any] = observed.job.get("status") or {}
    plan = reconcile(observed)  # never raises
    new = plan.status if plan.status is not None else old
    name = observed.job["metadata"]["name"]

    # Every phase change comes with its event, whichever branch decided it.
    assert_transitions_announced(old, plan)

    # The attempt never goes back: a restart or suspension once decided is never re-run.
    known = [int(old.get("attempt") or 0)] + [
        a for a in map(attempt_of, observed.attempt_jobs) if a is not None
    ]
    assert int(new.get("attempt") or 0) >= max(known)

    # A finished job stays finished.
    if old.get("phase") in TERMINAL_PHASES:
        assert new.get("phase") == old["phase"]

    # At most one worker Job is created: the current attempt's, and only when no Job or pod of
    # any attempt is left (two groups never train at once), never while suspended.
    created = [c for c in plan.creates if c["kind"] == "Job"]
    assert len(created) <= 1
    if created:
        assert created[0]["metadata"]["name"] == naming.attempt_job_name(name, new["attempt"])
        assert not observed.pods and not observed.attempt_jobs
        assert not observed.job["spec"]["runPolicy"]["suspend"]
        assert new.get("phase") not in TERMINAL_PHASES

    # Nothing is both created and deleted; a restart stays within backoffLimit.
    deleted = {d.name for d in plan.deletions}
    assert not deleted & {c["metadata"]["name"] for c in plan.creates}
    if plan.restarted:
        assert int(new["restarts"]) <= observed.job["spec"]["runPolicy"]["backoffLimit"]

    # Someone looks again: a live job is requeued; a finished one only for its TTL.
    if new.get("phase") not in TERMINAL_PHASES:
        assert plan.requeue_after is not None and plan.requeue_after >= 0
