#!/usr/bin/env python3
"""Run every fault test of tests/cluster N times and write the table of docs/reliability.md.

`make test` runs each fault once; this runs them `--rounds` times (one pytest session, one
fresh local control plane per round), counts what converged, and writes the figures with the
machine and date. A fault's test asserts convergence and that nothing was lost (no duplicate
or missing worker Job, no update missed, status as expected), so "converged" below means that
every one of those assertions held in that round.

    python bench/faults_bench.py --rounds 3 [--burst 50]

`--burst` sets the jobs per control-plane burst (TFTJ_FAULT_BURST; `make test` uses 20).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from benchdoc import write_section  # noqa: E402

DOC = REPO / "docs" / "reliability.md"
HEADING = "## Measured"


@dataclass(frozen=True)
class Fault:
    test: str  # pytest node id below tests/
    fault: str
    injected: str
    converged: str  # what the test checks converged / was not lost


FAULTS = [
    Fault(
        "cluster/test_faults_controlplane.py::test_apiserver_restarted_mid_burst",
        "kube-apiserver restarted mid-burst",
        "SIGTERM + restart on its port (LocalCluster.restart_component) after the first of "
        "{burst} jobs started; {late} more applied once it answers",
        "{total}/{total} jobs Succeeded on attempt 0; one worker Job, 2 pods, 1 ConfigMap each; "
        "same operator process",
    ),
    Fault(
        "cluster/test_faults_controlplane.py::test_etcd_restarted_mid_burst[etcd]",
        "etcd killed and restarted",
        "SIGKILL, restart with the same data dir; apiserver left running",
        "{burst}/{burst} jobs Succeeded on attempt 0, nothing duplicated",
    ),
    Fault(
        "cluster/test_faults_controlplane.py::test_etcd_restarted_mid_burst[etcd+apiserver]",
        "etcd and kube-apiserver restarted",
        "apiserver stopped, etcd SIGKILLed, both started again",
        "{burst}/{burst} jobs Succeeded on attempt 0, nothing duplicated",
    ),
    Fault(
        "cluster/test_faults_controlplane.py::test_webhook_unreachable_refuses_then_accepts",
        "webhook unreachable (operator down)",
        "operator stopped, its ValidatingWebhookConfiguration (failurePolicy Fail) kept",
        "apply refused naming the webhook; nothing created; accepted after restart",
    ),
    Fault(
        "cluster/test_faults_controlplane.py::"
        "test_without_the_webhook_cel_still_guards_the_schema_and_the_operator_the_rest",
        "webhook bypassed (registration deleted)",
        "ValidatingWebhookConfiguration deleted",
        "CEL refuses what it expresses; the operator refuses (InvalidSpec) the rest, no worker",
    ),
    Fault(
        "cluster/test_faults_controlplane.py::test_operator_partitioned_longer_than_its_watch_timeouts_recovers",
        "operator partitioned from the apiserver",
        "loopback forwarder drops all packets (testbin/tcpforward.py) until the operator "
        "reconnected 3 times (watch timeout 6 s)",
        "a job created and 2 finished while cut off: all 3 Succeeded after heal, no duplicate",
    ),
    Fault(
        "cluster/test_faults_nodes.py::test_evicted_worker_is_a_disruption_not_charged_to_backoff_limit",
        "worker evicted",
        "Eviction API (pods/eviction) on one running worker; backoffLimit 0",
        "group restarted (disruptions 1, restarts 0), then Succeeded",
    ),
    Fault(
        "cluster/test_faults_nodes.py::test_node_lost_with_workers_restarts_the_group_elsewhere",
        "node lost with workers on it",
        "kwok Node(s) holding the workers deleted; backoffLimit 0",
        "PodGC ends the pods; group restarted on the remaining node (disruptions 1, restarts 0)",
    ),
    Fault(
        "cluster/test_faults_nodes.py::"
        "test_node_not_ready_with_workers_restarts_the_group_once_its_pods_are_gone",
        "node NotReady with workers on it (kubelet gone)",
        "kwok stops playing the node, Ready=False; workers tolerate not-ready for 1 s; then the "
        "out-of-service taint",
        "disruption counted at eviction (restarts 0); no new group while the old pods are "
        "Terminating; after the taint, group restarted on the nodes left, Succeeded",
    ),
    Fault(
        "trainer/test_storage_full.py::test_full_storage_fails_at_once_naming_the_storage",
        "storage full (trainer)",
        "256 KiB tmpfs as the job's storage",
        "exit 6 STORAGE_FULL (not retried) within the timeout, one line naming the file and "
        "spec.storage.size; no traceback",
    ),
    Fault(
        "trainer/test_resume.py::"
        "test_chief_killed_during_a_save_resumes_from_the_last_complete_checkpoint",
        "chief SIGKILLed during a checkpoint save (trainer)",
        "SIGKILL while ckpt-N_temp exists",
        "next attempt resumes from ckpt-(N-1) and trains to the end",
    ),
    Fault(
        "cluster/test_faults_nodes.py::test_unschedulable_workers_end_at_the_deadline_saying_why",
        "workers never schedulable",
        "16 GPUs per worker on 8-GPU nodes; activeDeadlineSeconds 5",
        "Failed DeadlineExceeded with the scheduler's message; worker Job removed",
    ),
]


def run_round(env: dict[str, str], index: int) -> dict[str, tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        ids = [f"tests/{f.test}" for f in FAULTS]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={report}",
                *ids,
            ],
            cwd=REPO,
            env=env,
            check=False,
        )
        results: dict[str, tuple[str, float]] = {}
        for case in ET.parse(report).getroot().iter("testcase"):
            name = case.get("name", "")
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                elif child.tag == "skipped":
                    outcome = "skipped"
            results[name] = (outcome, float(case.get("time", 0)))
        print(
            f"round {index}: {sum(o == 'passed' for o, _ in results.values())}/{len(results)} passed"
        )
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", type=int, default=50, help="jobs per control-plane burst")
    args = parser.parse_args()
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'operator'}:{REPO / 'trainer_image'}",
        "TFTJ_FAULT_BURST": str(args.burst),
    }
    sizes = {"burst": args.burst, "late": max(1, args.burst // 4)}
    sizes["total"] = sizes["burst"] + sizes["late"]
    outcomes: dict[str, list[str]] = defaultdict(list)
    began = time.monotonic()
    for i in range(args.rounds):
        for name, (outcome, _) in run_round(env, i + 1).items():
            outcomes[name].append(outcome)
    rows = [
        "| fault | how injected | runs | converged | what the test checks (nothing lost) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for fault in FAULTS:
        name = fault.test.split("::", 1)[1]
        got = outcomes.get(name, [])
        rows.append(
            f"| {fault.fault} | {fault.injected.format(**sizes)} | {len(got)} | "
            f"{sum(o == 'passed' for o in got)}/{len(got)} | {fault.converged.format(**sizes)} |"
        )
    body = "\n".join(
        [
            f"`python bench/faults_bench.py --rounds {args.rounds}` on {platform.node() or 'this machine'} "
            f"({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}, "
            f"{(time.monotonic() - began) / 60:.0f} min in all.",
            "",
            *rows,
        ]
    )
    write_section(HEADING, body, DOC)
    print(f"wrote {DOC}")
    return 0 if all(o == "passed" for got in outcomes.values() for o in got) else 1


if __name__ == "__main__":
    sys.exit(main())
