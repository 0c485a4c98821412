"""What Argo CD and Flux see of TFTrainingJobs the real operator drives through every phase.

A `kubectl get tftj --watch` records every version of every job while they go through Pending,
Running, Restarting, Suspended, Succeeded and Failed (and one with a spec the operator refuses,
which only an older, looser CRD without the webhook lets in). Each recorded state is judged by
the Argo CD health Lua (real Lua 5.1 via lupa) and by the kstatus rules. With
TFTJ_WRITE_FIXTURES=1 the states are written to tests/unit/gitops-fixtures/ for the unit test.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterkit import EXIT_CODE_LABEL, HOLD_LABEL, Kubectl, wait_for
from devoperator import CRD_FILE, WEBHOOK_CONFIG, training_job
from localcluster import child_env
from tftj.api.contract import ExitCode
from tftj.api.crd import crd

from tests.unit.gitopscheck import EXPECTED, FIXTURES, argocd_health, as_fixture, kstatus

# Generous: a deadline, not a pause. The first status write of a burst of jobs took over 60 s
# once with the machine at load 25.
TIMEOUT = 180
Obj = dict[str, Any]


class Recorder:
    """`kubectl get tftj --watch -o json` in the background: every version of every job."""

    def __init__(self, k: Kubectl, out: Path) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [
                str(k.binary),
                f"--kubeconfig={k.kubeconfig}",
                f"--namespace={k.namespace}",
                "get",
                "tftrainingjobs",
                "--watch",
                "--output=json",
            ],
            stdout=out.open("w"),
            stderr=subprocess.DEVNULL,
            env=child_env(),
        )

    def versions(self) -> list[Obj]:
        text, decoder, found, at = self.out.read_text(), json.JSONDecoder(), [], 0
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            if at >= len(text):
                return found
            try:
                obj, at = decoder.raw_decode(text, at)
            except json.JSONDecodeError:
                return found  # a document still being written
            found.append(obj)

    def of(self, name: str) -> list[Obj]:
        return [v for v in self.versions() if v["metadata"]["name"] == name]

    def first(self, name: str, test: Callable[[Obj], bool]) -> Obj:
        return dict(
            wait_for(
                lambda: next((v for v in self.of(name) if test(v)), None),
                TIMEOUT,
                message=lambda: f"{name}: phases seen {[phase(v) for v in self.of(name)]}",
            )
        )

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def phase(obj: Obj) -> str | None:
    return (obj.get("status") or {}).get("phase")


def in_phase(name: str) -> Callable[[Obj], bool]:
    return lambda obj: phase(obj) == name


@pytest.fixture
def recorder(k: Kubectl, tmp_path: Path) -> Iterator[Recorder]:
    rec = Recorder(k, tmp_path / "watch.json")
    yield rec
    rec.stop()


def held(name: str, **spec: Any) -> Obj:
    return training_job(name, replicas=2, run_seconds=None, pod_labels={HOLD_LABEL: "true"}, **spec)


def _loosened_crd() -> Obj:
    """The CRD as an older release might have had it: learningRate without its upper bound."""
    loose = crd()
    schema = loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rate = schema["properties"]["spec"]["properties"]["training"]["properties"]["learningRate"]
    rate.pop("maximum")
    return loose


@contextlib.contextmanager
def skewed_schema(k: Kubectl) -> Iterator[None]:
    """No webhook and a looser CRD (version skew): the only way a spec the operator refuses
    gets stored. Both are put back afterwards."""
    admin = k.with_namespace(None)
    hook = admin.get("validatingwebhookconfiguration", WEBHOOK_CONFIG)
    saved = {
        "apiVersion": hook["apiVersion"],
        "kind": hook["kind"],
        "metadata": {"name": WEBHOOK_CONFIG},
        "webhooks": hook["webhooks"],
    }
    try:
        admin("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIG)
        admin("apply", "--server-side", "--force-conflicts", "-f", "-", input=_loosened_crd())
        yield
    finally:
        admin("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
        admin.apply(saved)


def stalled(obj: Obj) -> bool:
    conds = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Stalled" and c["status"] == "True" for c in conds)


def test_gitops_tools_read_every_phase_right(k: Kubectl, recorder: Recorder) -> None:
    # Once the watch reports this job it is watching: the next job's creation is seen as
    # created, before the operator's first status write.
    k.apply(held("suspends"))
    recorder.first("suspends", lambda v: True)
    k.apply(training_job("succeeds", replicas=2, run_seconds=2))
    k.apply(
        training_job(
            "fails",
            replicas=2,
            run_seconds=None,
            pod_labels={EXIT_CODE_LABEL: str(int(ExitCode.BAD_DATA))},
        )
    )
    # More GPUs than any node has: stays Pending (unschedulable).
    k.apply(training_job("pending", replicas=1, gpus=16, run_seconds=None))
    k.apply(held("restarts"))

    states: dict[str, Obj] = {}
    states["not-observed"] = recorder.first("succeeds", lambda v: not v.get("status"))
    states["succeeded"] = recorder.first("succeeds", in_phase("Succeeded"))
    states["failed"] = recorder.first("fails", in_phase("Failed"))
    states["pending"] = recorder.first(
        "pending", lambda v: phase(v) == "Pending" and "nvidia.com/gpu" in json.dumps(v)
    )
    states["running"] = recorder.first("restarts", in_phase("Running"))
    pod = k.items("pods", "-l", "tftj.dev/job-name=restarts")[0]["metadata"]["name"]
    k("label", "pod", pod, f"{EXIT_CODE_LABEL}={int(ExitCode.PEER_LOST)}")
    states["restarting"] = recorder.first("restarts", in_phase("Restarting"))
    recorder.first("suspends", in_phase("Running"))
    k("patch", "tftj", "suspends", "--type=merge", "-p", '{"spec":{"runPolicy":{"suspend":true}}}')
    states["suspended"] = recorder.first("suspends", in_phase("Suspended"))
    # Kept loose until the operator has written its verdict: a status write of an object the
    # strict schema would refuse is not what this test is about.
    with skewed_schema(k):
        job = held("invalid", training={"learningRate": 50})
        wait_for(
            lambda: k.create(job, check=False).returncode == 0,
            TIMEOUT,
            message="the loosened CRD admits learningRate 50",
        )
        states["invalid-spec"] = recorder.first("invalid", stalled)

    assert set(states) == set(EXPECTED)
    judged = {name: (argocd_health(obj)["status"], kstatus(obj)[0]) for name, obj in states.items()}
    assert judged == EXPECTED
    assert "spec.training.learningRate" in argocd_health(states["invalid-spec"])["message"]
    assert "BAD_DATA" in argocd_health(states["failed"])["message"]
    if os.environ.get("TFTJ_WRITE_FIXTURES") == "1":
        FIXTURES.mkdir(exist_ok=True)
        for name, obj in states.items():
            (FIXTURES / f"{name}.json").write_text(json.dumps(as_fixture(obj), indent=1) + "\n")
