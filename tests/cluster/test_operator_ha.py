"""Two operator replicas with leader election (a coordination.k8s.io Lease), as the chart runs
them: only the leader reconciles, both serve the webhook; SIGKILL the leader mid-burst and the
follower takes over, every job converges with no duplicate attempt and no orphan, and not one
apply is refused meanwhile; a clean shutdown hands the lease over without waiting it out.

The local ValidatingWebhookConfiguration names one URL (no Service on a control plane without
nodes' networking): it points at the replica that is *not* killed, which is the point — killing
the leader must not touch the webhook. In a cluster, the chart's Service spreads admission over
both replicas' ready endpoints, and a killed pod leaves the endpoints (docs/operations.md).
"""

from __future__ import annotations

import signal
import threading
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from clusterkit import Kubectl, wait_for
from devoperator import (
    TEST_OPERATOR_ARGS,
    OperatorProcess,
    delete_lease,
    install,
    leader_args,
    lease,
    stop_for_tests,
    training_job,
)

JOBS = 24
LEASE_SECONDS = 10
# Short for CI, yet with room for an apiserver slowed by a loaded machine: a leader that cannot
# renew within the deadline exits, and here no Deployment would restart it.
LEASE = {"lease_seconds": LEASE_SECONDS, "renew_seconds": 8, "retry_seconds": 1}
TIMEOUT = 180


class Pair:
    def __init__(self, cluster: Any, tmp: pytest.TempPathFactory, **lease_flags: Any) -> None:
        from devoperator import Admin

        self.admin = Admin(cluster.kubeconfig)
        install(self.admin)
        delete_lease(self.admin)  # a previous test's holder must not linger
        suffix = uuid.uuid4().hex[:6]
        self.ids = (f"a-{suffix}", f"b-{suffix}")
        self.procs = [
            OperatorProcess(
                self.admin,
                tmp.mktemp(f"operator-{i}"),
                [*TEST_OPERATOR_ARGS, *leader_args(i, **lease_flags)],
            )
            for i in self.ids
        ]

    def holder(self) -> str:
        return str(lease(self.admin).get("holderIdentity") or "")

    def start(self) -> tuple[OperatorProcess, OperatorProcess]:
        """The first replica, once it leads; then the second, whose webhook the apiserver calls."""
        first, second = self.procs
        first.start(die_with_parent=True)
        wait_for(lambda: self.holder() == self.ids[0], 60, message="the first replica to lead")
        second.start(die_with_parent=True)
        return first, second

    def stop(self) -> None:
        for proc in self.procs:
            stop_for_tests(proc)


@pytest.fixture
def pair(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    pair = Pair(cluster, tmp_path_factory, **LEASE)
    yield pair
    for proc in pair.procs:
        print(f"---- {proc.state_dir.name} log ----\n{proc.logs(40)}")
    pair.stop()


def metric(proc: OperatorProcess, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.metrics_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


class Applier(threading.Thread):
    """kubectl apply, one job at a time, then server-side dry-run creates until stopped: every
    one of them goes through the webhook; all results are kept."""

    def __init__(self, kubectl: Kubectl, names: list[str]) -> None:
        super().__init__(daemon=True)
        self.kubectl, self.names = kubectl, names
        self.applied: list[str] = []
        self.refused: list[str] = []
        self.probes = 0
        self.done = threading.Event()

    def run(self) -> None:
        for name in self.names:
            self._call("apply", "-f", "-", input=training_job(name, replicas=2, run_seconds=3))
            self.applied.append(name)
        while not self.done.is_set():
            probe = training_job(f"probe-{self.probes}", replicas=2)
            self._call("create", "--dry-run=server", "-f", "-", input=probe)
            self.probes += 1

    def _call(self, *args: str, input: dict[str, Any]) -> None:
        proc = self.kubectl(*args, input=input, check=False)
        if proc.returncode != 0:
            self.refused.append(proc.stderr.strip())


def test_sigkill_of_the_leader_mid_burst_hands_over_without_a_duplicate_or_a_refused_apply(
    kubectl: Kubectl, pair: Pair
) -> None:
    leader, follower = pair.start()
    names = [f"ha-{i}" for i in range(JOBS)]
    applier = Applier(kubectl, names)
    applier.start()
    try:
        wait_for(
            lambda: len(kubectl.items("jobs", "-l", "tftj.dev/job-name")) >= 3,
            90,
            interval=0.05,
            message="the leader's first worker Jobs",
        )
        # Only the leader writes: the follower has not reconciled anything.
        assert metric(follower, "tftj_operator_is_leader") == 0
        assert metric(follower, 'tftj_operator_reconciles_total{result="ok"}') == 0
        assert metric(leader, "tftj_operator_is_leader") == 1
        leader.kill(signal.SIGKILL)
        assert leader.process is not None and leader.process.returncode == -signal.SIGKILL
        applied_at_kill = len(applier.applied)

        wait_for(
            lambda: pair.holder() == pair.ids[1],
            3 * LEASE_SECONDS + 30,
            message=lambda: f"the follower to take the lease: {lease(pair.admin)}",
        )
        # Keep admitting past the takeover, then stop.
        probes = applier.probes
        wait_for(lambda: applier.probes >= probes + 3, 60, message="admissions after takeover")
    finally:
        applier.done.set()
        applier.join(120)
    assert applier.refused == [], "the webhook refused applies during the failover"
    assert applier.applied == names

    def all_succeeded() -> bool:
        items = kubectl.items("tftj")
        return len(items) == JOBS and all(
            (i.get("status") or {}).get("phase") == "Succeeded" for i in items
        )

    wait_for(all_succeeded, TIMEOUT, message=lambda: kubectl("get", "tftj").stdout)
    print(f"jobs applied when the leader was killed: {applied_at_kill}/{JOBS}")
    assert metric(follower, "tftj_operator_is_leader") == 1
    assert metric(follower, "tftj_operator_leader_transitions_total") == 1
    assert lease(pair.admin)["leaseTransitions"] >= 1

    jobs = kubectl.items("jobs", "-l", "tftj.dev/job-name")
    assert Counter(j["metadata"]["labels"]["tftj.dev/job-name"] for j in jobs) == dict.fromkeys(
        names, 1
    ), "exactly one worker Job per TFTrainingJob"
    assert {j["metadata"]["name"] for j in jobs} == {f"{n}-a0" for n in names}
    pods = Counter(
        p["metadata"]["labels"]["tftj.dev/job-name"]
        for p in kubectl.items("pods", "-l", "tftj.dev/job-name")
    )
    assert pods == dict.fromkeys(names, 2), "two workers each, none duplicated"
    for item in kubectl.items("tftj"):
        assert item["status"]["restarts"] == 0 and item["status"]["attempt"] == 0
    # No orphans: every child is owned by a TFTrainingJob that exists.
    uids = {i["metadata"]["uid"] for i in kubectl.items("tftj")}
    for kind in ("jobs", "configmaps", "services"):
        for child in kubectl.items(kind, "-l", "tftj.dev/job-name"):
            owners = {o["uid"] for o in child["metadata"].get("ownerReferences") or []}
            assert owners & uids, f"{kind} {child['metadata']['name']} has no live owner"


def test_a_clean_shutdown_releases_the_lease_so_the_follower_need_not_wait_it_out(
    cluster: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A lease far longer than the wait below: only a release lets the follower in that soon.
    long_lease = 120
    pair = Pair(
        cluster, tmp_path_factory, lease_seconds=long_lease, renew_seconds=60, retry_seconds=0.5
    )
    try:
        leader, follower = pair.start()
        leader.stop()
        assert leader.process is not None and leader.process.returncode == 0, leader.logs()
        wait_for(
            lambda: pair.holder() == pair.ids[1],
            long_lease / 4,
            message=lambda: f"the follower to take the released lease: {lease(pair.admin)}",
        )
        assert "released lease" in leader.logs()
        wait_for(lambda: metric(follower, "tftj_operator_is_leader") == 1, 30)
    finally:
        pair.stop()


def test_a_leader_that_finds_another_holder_in_the_lease_exits_at_once(
    cluster: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Never two writers: a replica that has lost the lease (here taken by hand, as a partitioned
    leader would find it) exits, and the Deployment restarts it as a follower."""
    pair = Pair(cluster, tmp_path_factory, **LEASE)
    leader = pair.procs[0]
    try:
        leader.start(die_with_parent=True)
        wait_for(lambda: pair.holder() == pair.ids[0], 60, message="the replica to lead")
        pair.admin(
            "patch",
            "lease",
            "tftj-operator",
            "-n",
            "tftj-system",
            "--type=merge",
            "-p",
            '{"spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 3600}}',
        )
        assert leader.process is not None
        wait_for(
            lambda: leader.process.poll() is not None, 60, message="the deposed leader to exit"
        )
        assert leader.process.returncode == 1
        assert "lost lease" in leader.logs()
    finally:
        pair.stop()
        delete_lease(pair.admin)
