"""Admission of TFTrainingJobs as a user meets it: `kubectl apply` prints why a manifest is
refused (naming the field), prints warnings, and refuses parameter changes to a started job."""

from __future__ import annotations

from typing import Any

from clusterkit import HOLD_LABEL, Kubectl, wait_for
from devoperator import training_job

TIMEOUT = 60


def refused(k: Kubectl, manifest: dict[str, Any]) -> str:
    proc = k.apply(manifest, check=False)
    assert proc.returncode != 0, f"accepted: {proc.stdout}"
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_out_of_range_value_names_the_field(k: Kubectl) -> None:
    err = refused(k, training_job("bad-lr", training={"learningRate": -1}))
    assert "spec.training.learningRate" in err


def test_cross_field_rule_names_the_field_and_what_is_allowed(k: Kubectl) -> None:
    err = refused(k, training_job("bad-batch", replicas=3, training={"batchSize": 32}))
    assert "spec.training.batchSize" in err and "divisible" in err


def test_every_problem_is_reported_at_once(k: Kubectl) -> None:
    err = refused(
        k,
        training_job(
            "bad-many",
            replicas=3,
            training={"batchSize": 32},
            model={"task": "regression"},
            data={"format": "csv"},
        ),
    )
    assert "spec.training.batchSize" in err and "spec.data.path" in err


def test_unknown_field_is_refused(k: Kubectl) -> None:
    err = refused(k, training_job("bad-field", training={"learningRat": 0.1}))
    assert "learningRat" in err


def test_warnings_are_printed_by_kubectl(k: Kubectl) -> None:
    proc = k.apply(training_job("warned", replicas=1, run_seconds=1, runPolicy={"backoffLimit": 5}))
    assert "Warning:" in proc.stderr and "spec.storage" in proc.stderr


def test_a_ttl_on_a_gitops_synced_job_is_warned_about(k: Kubectl) -> None:
    job = training_job(
        "synced", replicas=1, run_seconds=1, runPolicy={"ttlSecondsAfterFinished": 30}
    )
    job["metadata"]["labels"] = {"kustomize.toolkit.fluxcd.io/name": "trainers"}
    proc = k.apply(job)
    assert "Warning: spec.runPolicy.ttlSecondsAfterFinished: the job looks synced by Flux" in (
        proc.stderr
    )
    assert "it trains again" in proc.stderr


def test_parameters_of_a_started_job_are_immutable(k: Kubectl) -> None:
    k.apply(training_job("frozen", replicas=2, run_seconds=None, pod_labels={HOLD_LABEL: "true"}))
    wait_for(
        lambda: (k.get("tftj", "frozen").get("status") or {}).get("startTime"),
        TIMEOUT,
        message="the job started",
    )
    change = k(
        "patch",
        "tftj",
        "frozen",
        "--type=merge",
        "-p",
        '{"spec":{"training":{"learningRate":0.5},"workers":{"replicas":4}}}',
        check=False,
    )
    assert change.returncode != 0
    assert (
        "spec.training.learningRate" in change.stderr and "spec.workers.replicas" in change.stderr
    )
    # ... and says what to do instead.
    assert "new metadata.name" in change.stderr and "kubectl delete tftj NAME" in change.stderr
    # What steers the run may change, and so may metadata.
    k(
        "patch",
        "tftj",
        "frozen",
        "--type=merge",
        "-p",
        '{"spec":{"runPolicy":{"activeDeadlineSeconds":3600,"ttlSecondsAfterFinished":60}}}',
    )
    k("label", "tftj", "frozen", "team=vision")
    assert k.get("tftj", "frozen")["spec"]["runPolicy"]["activeDeadlineSeconds"] == 3600


def test_a_model_too_big_to_train_is_refused_by_the_webhook(k: Kubectl) -> None:
    # Each width is within its schema range (the CRD accepts it); only the webhook's cross-field
    # rule sees that two of them multiply into a 16 GiB kernel the worker could never allocate.
    err = refused(k, training_job("too-big", replicas=1, model={"hiddenUnits": [65536, 65536]}))
    assert "spec.model.hiddenUnits" in err and "parameters" in err


def test_a_layer_of_width_zero_is_refused(k: Kubectl) -> None:
    err = refused(k, training_job("zero-width", replicas=1, model={"hiddenUnits": [64, 0]}))
    assert "spec.model.hiddenUnits[1]" in err and "evaluating rule" not in err
