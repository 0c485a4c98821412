"""The operator's small pure parts: progress parsing, conditions, admission rules, the work
queue, the webhook certificates, the RBAC rules file."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import yaml
from tftj.operator import admission, conditions
from tftj.operator.certs import ensure_certs
from tftj.operator.workqueue import WorkQueue
from tftj.trainerprogress import parse_trainer_metrics

REPO = Path(__file__).resolve().parents[2]

METRICS = """\
# TYPE tftj_trainer_epoch gauge
tftj_trainer_epoch{job="j",worker="0"} 2
tftj_trainer_epochs_target{job="j",worker="0"} 5
tftj_trainer_step{job="j",worker="0"} 100
tftj_trainer_loss{split="train"} 0.25
tftj_trainer_loss{split="validation"} 0.5
tftj_trainer_metric{name="accuracy",split="validation"} 0.9
tftj_trainer_examples_per_second 512.25
tftj_trainer_eta_seconds 61.6
process_cpu_seconds_total 3
"""


def test_progress_from_trainer_metrics() -> None:
    progress = parse_trainer_metrics(METRICS)
    assert progress is not None
    assert progress.to_status() == {
        "epoch": 2,
        "totalEpochs": 5,
        "step": 100,
        "loss": 0.25,
        "metrics": {"val_accuracy": 0.9, "val_loss": 0.5},
        "examplesPerSecond": 512.25,
        "etaSeconds": 62,
    }


def test_progress_absent_before_training() -> None:
    assert parse_trainer_metrics("process_cpu_seconds_total 3\n") is None


def test_phase_conditions_flip_and_keep_transition_times() -> None:
    c = conditions.set_phase([], "Pending", "WorkersStarting", "0/2", now="t1", generation=1)
    c = conditions.set_phase(c, "Running", "AllWorkersRunning", "2/2", now="t2", generation=1)
    c = conditions.set_phase(c, "Running", "AllWorkersRunning", "2/2 again", now="t3", generation=1)
    pending, running = conditions.find(c, "Pending"), conditions.find(c, "Running")
    assert pending and pending["status"] == "False" and pending["lastTransitionTime"] == "t2"
    assert running and running["status"] == "True" and running["lastTransitionTime"] == "t2"
    assert running["message"] == "2/2 again"


def _job(spec: dict, started: bool = False) -> dict:
    body = {
        "apiVersion": "tftj.dev/v1alpha1",
        "kind": "TFTrainingJob",
        "metadata": {"name": "j", "namespace": "n"},
        "spec": spec,
    }
    if started:
        body["status"] = {"startTime": "2026-11-28T00:00:00Z"}
    return body


BASE = {"data": {"format": "synthetic"}, "workers": {"gpusPerWorker": 0}}


def test_admission_errors_carry_field_paths() -> None:
    review = admission.review("CREATE", _job({**BASE, "training": {"learningRate": -1}}), None)
    assert not review.allowed
    assert any(e.startswith("spec.training.learningRate") for e in review.errors)


def test_started_job_parameters_are_frozen_but_run_policy_is_not() -> None:
    old = _job(BASE, started=True)
    new = _job({**BASE, "training": {"epochs": 3}, "runPolicy": {"suspend": True}})
    review = admission.review("UPDATE", new, old)
    assert review.errors == [f"spec.training.epochs: {admission.IMMUTABLE_HINT}"]
    steer = _job({**BASE, "runPolicy": {"suspend": True, "activeDeadlineSeconds": 5}})
    assert admission.review("UPDATE", steer, old).allowed
    # Before the start everything may change.
    assert admission.review("UPDATE", new, _job(BASE)).allowed


def test_work_queue_deduplicates_and_reruns_dirty_keys() -> None:
    async def scenario() -> list[object]:
        q = WorkQueue()
        for key in ("a", "a", "b"):
            q.add(key)
        seen = [await q.get(), await q.get()]
        q.add("a")  # while "a" is being worked on
        q.done("a")
        q.done("b")
        seen.append(await asyncio.wait_for(q.get(), 1))
        q.done("a")
        q.add_after("c", 0.01)
        q.add_after("c", 10)  # the earliest request wins
        seen.append(await asyncio.wait_for(q.get(), 1))
        return seen

    assert asyncio.run(scenario()) == ["a", "b", "a", "c"]


def test_work_queue_serves_urgent_keys_first() -> None:
    async def scenario() -> list[object]:
        q = WorkQueue()
        for key in ("old-1", "old-2"):
            q.add(key)
        q.add("new", urgent=True)
        q.add("old-2", urgent=True)  # re-prioritised: served once, early
        seen = []
        for _ in range(3):
            key = await q.get()
            q.done(key)
            seen.append(key)
        assert len(q) == 0
        return seen

    assert asyncio.run(scenario()) == ["new", "old-2", "old-1"]


def test_webhook_certificates_verify_for_their_host(tmp_path: Path) -> None:
    paths = ensure_certs(tmp_path, ["127.0.0.1"])
    ctx = ssl.create_default_context(cafile=str(paths.cafile))
    ctx.load_cert_chain(paths.certfile, paths.keyfile)  # the pair matches
    first = paths.certfile.read_bytes()
    assert ensure_certs(tmp_path, ["127.0.0.1"]).certfile.read_bytes() == first  # reused
    other = ensure_certs(tmp_path, ["tftj-webhook.tftj-system.svc"])
    assert other.certfile.read_bytes() != first  # a new host needs a new certificate


@pytest.mark.parametrize("verb_forbidden", [("tftrainingjobs", "update"), ("pods", "create")])
def test_rbac_rules_stay_minimal(verb_forbidden: tuple[str, str]) -> None:
    rules = yaml.safe_load((REPO / "charts/tftj/files/operator-rbac-rules.yaml").read_text())
    resource, verb = verb_forbidden
    assert not any(resource in r["resources"] and verb in r["verbs"] for r in rules)
