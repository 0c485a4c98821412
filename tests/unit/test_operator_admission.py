"""tftj.operator.admission: the webhook's decision about a TFTrainingJob (its wire format and
server: test_operator_webhook)."""

from __future__ import annotations

from tftj.operator import admission


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


def test_any_object_gets_a_verdict_naming_the_field() -> None:
    odd = {"apiVersion": "tftj.dev/v1alpha1", "kind": "TFTrainingJob", "metadata": [1], "spec": 3}
    review = admission.review("UPDATE", odd, {"status": ["not", "a", "mapping"]})
    assert review.errors == [
        "metadata: must be a mapping with a name, got a list of 1 item",
        "spec: must be a mapping, got 3",
    ]
    assert not admission.review("CREATE", "not an object", None).allowed
