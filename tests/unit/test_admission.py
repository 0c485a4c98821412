"""tftj.operator.admission: the webhook's decision about a TFTrainingJob (its wire format and
server: test_operator_webhook)."""

from __future__ import annotations

import pytest
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
    assert review.errors == [
        f"spec.training.epochs: {admission.IMMUTABLE}",
        admission.IMMUTABLE_HINT,
    ]
    # The refusal says what to do instead.
    assert "new metadata.name" in admission.IMMUTABLE_HINT
    assert "kubectl delete tftj NAME" in admission.IMMUTABLE_HINT
    # An empty list written out is no change from an absent one.
    empty = _job({**BASE, "workers": {"gpusPerWorker": 0, "podTemplate": {"env": []}}})
    assert admission.review("UPDATE", empty, old).allowed
    # Writing out a default trains the same: no change (the CRD stores specs as written, and a
    # job stored when the CRD still defaulted its spec compares equal to its manifest).
    explicit = _job({**BASE, "training": {"epochs": 10, "schedule": {"type": "constant"}}})
    assert admission.review("UPDATE", explicit, old).allowed
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


@pytest.mark.parametrize(
    ("where", "key", "tool"),
    [
        ("labels", "app.kubernetes.io/instance", "Argo CD (label app.kubernetes.io/instance)"),
        (
            "annotations",
            "argocd.argoproj.io/tracking-id",
            "Argo CD (annotation argocd.argoproj.io/tracking-id)",
        ),
        (
            "labels",
            "kustomize.toolkit.fluxcd.io/name",
            "Flux (label kustomize.toolkit.fluxcd.io/name)",
        ),
        ("labels", "helm.toolkit.fluxcd.io/name", "Flux (label helm.toolkit.fluxcd.io/name)"),
    ],
)
def test_a_ttl_under_gitops_is_warned_about(where: str, key: str, tool: str) -> None:
    body = _job({**BASE, "runPolicy": {"ttlSecondsAfterFinished": 60}})
    body["metadata"][where] = {key: "trainers"}
    review = admission.review("CREATE", body, None)
    assert review.allowed
    assert [w for w in review.warnings if "ttlSecondsAfterFinished" in w] == [
        f"spec.runPolicy.ttlSecondsAfterFinished: the job looks synced by {tool}, which "
        "re-creates it once the TTL deleted it 60s after it finished, and it trains again: "
        "leave the TTL out of jobs kept in Git (see docs/gitops.md)"
    ]
    # The same job without a TTL, or not under GitOps, gets no such warning.
    no_ttl = _job(BASE)
    no_ttl["metadata"][where] = {key: "trainers"}
    plain = _job({**BASE, "runPolicy": {"ttlSecondsAfterFinished": 60}})
    for quiet in (no_ttl, plain):
        assert not any("ttlSeconds" in w for w in admission.review("CREATE", quiet, None).warnings)


def test_gitops_marks_of_the_wrong_shape_are_ignored() -> None:
    body = _job({**BASE, "runPolicy": {"ttlSecondsAfterFinished": 60}})
    body["metadata"]["labels"] = ["app.kubernetes.io/instance"]
    assert admission.gitops_ttl_warnings(body) == []
    assert admission.gitops_ttl_warnings("not a job") == []
