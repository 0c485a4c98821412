"""Soak, sized for CI: rounds of jobs created, run to completion on kwok and deleted, with one
operator running throughout. After every round nothing is stuck, no child is left, and the
operator's caches and indexes (counted on its /metrics: tftj_operator_cache_objects,
tftj_operator_index_entries) are back to empty: what it holds follows the live objects and
does not grow round after round. bench/soak_bench.py runs the same at 1,000 jobs x 4 and
reports the operator's RSS per round.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterkit import Kubectl, wait_for
from devoperator import (
    HELD_METRICS,
    OperatorProcess,
    start_for_tests,
    stop_for_tests,
    training_job,
)
from localcluster import LocalCluster

ROUNDS, JOBS, WORKERS = 3, 30, 2
TIMEOUT = 240  # one round on a loaded 2-core machine takes well under a minute
CHILD_KINDS = "jobs,pods,configmaps,services"


def held(proc: OperatorProcess) -> dict[str, float]:
    found = proc.held()
    assert len(found) > len(HELD_METRICS), f"the operator exports no cache counts: {found}"
    return found


@pytest.fixture
def soak_operator(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """An operator of its own, watching only this test's namespace: its counts are this
    test's objects alone, whatever other tests left elsewhere in the session's cluster."""
    proc = start_for_tests(cluster.kubeconfig, tmp_path / "operator", [f"--namespace={namespace}"])
    yield proc
    stop_for_tests(proc)


def test_rounds_of_jobs_leave_nothing_behind(
    kubectl: Kubectl, soak_operator: OperatorProcess
) -> None:
    for round_ in range(ROUNDS):
        one_round(kubectl, soak_operator, f"round {round_}", f"soak{round_}")


def one_round(k: Kubectl, proc: OperatorProcess, what: str, prefix: str) -> None:
    names = {f"{prefix}-{i:02d}" for i in range(JOBS)}
    jobs = [training_job(n, replicas=WORKERS, run_seconds=1) for n in sorted(names)]
    k.create({"apiVersion": "v1", "kind": "List", "items": jobs})

    def phases() -> dict[str, str]:
        listed = k.json("get", "tftj")["items"]
        return {j["metadata"]["name"]: (j.get("status") or {}).get("phase") for j in listed}

    wait_for(
        lambda: set(phases().items()) == {(n, "Succeeded") for n in names},
        TIMEOUT,
        interval=1,
        message=lambda: f"{what}: every job Succeeded (now: {phases()})",
    )
    # With every job live the operator holds one entry per job and per worker, no more.
    live = held(proc)
    assert live["tftj_operator_cache_objects/TFTrainingJob"] == JOBS, live
    assert live["tftj_operator_cache_objects/Pod"] <= JOBS * WORKERS, live
    assert live["tftj_operator_cache_objects/Job"] <= JOBS, live
    assert all(
        v <= JOBS * (WORKERS + 1) for n, v in live.items() if n.startswith(HELD_METRICS[1])
    ), live

    k("delete", "tftj", "--all", "--wait=false")

    def leftovers() -> str:
        return str(k("get", CHILD_KINDS, "-l", "tftj.dev/job-name", "-o", "name").stdout)

    wait_for(
        lambda: not phases() and not leftovers(),
        TIMEOUT,
        interval=1,
        message=lambda: f"{what}: jobs and children gone (left: {leftovers()})",
    )

    def nonzero() -> dict[str, float]:
        return {n: v for n, v in held(proc).items() if v}

    wait_for(
        lambda: not nonzero(),
        TIMEOUT,
        interval=1,
        message=lambda: (
            f"{what}: the operator's caches and indexes empty again (held: {nonzero()})"
        ),
    )
