"""The Argo CD health check and the kstatus view over TFTrainingJob statuses captured from the
real operator (tests/cluster/test_gitops_status.py writes the fixtures)."""

from __future__ import annotations

import pytest
from gitopscheck import EXPECTED, argocd_health, kstatus, load_fixture


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_argocd_health_of_captured_statuses(name: str) -> None:
    obj = load_fixture(name)
    health = argocd_health(obj)
    assert health["status"] == EXPECTED[name][0]
    assert health["message"]  # Argo CD shows it next to the status


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_kstatus_of_captured_statuses(name: str) -> None:
    assert kstatus(load_fixture(name))[0] == EXPECTED[name][1]


def test_argocd_health_messages_say_why() -> None:
    assert "BAD_DATA" in argocd_health(load_fixture("failed"))["message"]
    assert "spec." in argocd_health(load_fixture("invalid-spec"))["message"]
    assert "operator" in argocd_health(load_fixture("not-observed"))["message"]


def test_a_status_behind_the_spec_is_progressing() -> None:
    # An edit (e.g. runPolicy.suspend) the operator has not acted on yet.
    obj = load_fixture("succeeded")
    obj["metadata"]["generation"] = obj["status"]["observedGeneration"] + 1
    assert argocd_health(obj)["status"] == "Progressing"
    assert kstatus(obj)[0] == "InProgress"
