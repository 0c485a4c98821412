#!/usr/bin/env python3
"""Leader failover benchmark: two operator replicas with leader election (the chart's lease
settings: 15 s lease, 10 s renew deadline, 2 s retry), N TFTrainingJobs x W workers created at
once on kwok nodes.

In ONE run, each phase on a fresh local control plane:

- baseline: the burst with both replicas up and no failover (create -> all workers Running);
- failover: the same burst; the leader is SIGKILLed as soon as its first worker Job exists;
  the takeover time (kill -> the other replica holds the Lease) and the jobs' latency, whose
  excess over the baseline is what the failover cost them;
- handover: the new leader stopped cleanly (SIGTERM) with the restarted replica following:
  SIGTERM -> the follower holds the released Lease.

Writes the "## Leader failover" section of docs/benchmarks.md.

    .venv/bin/python bench/failover_bench.py [--jobs 30 --workers 4]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "testbin"), str(REPO / "operator"), str(REPO / "bench")]

from benchdoc import write_section  # noqa: E402
from devoperator import (  # noqa: E402
    TEST_OPERATOR_ARGS,
    Admin,
    OperatorProcess,
    delete_lease,
    install,
    leader_args,
    lease,
    training_job,
)
from localcluster import LocalCluster  # noqa: E402
from operator_bench import HOLD, SMALL, Watcher, apply_many, phase, wait_all, warm_up  # noqa: E402

LEASE = {"lease_seconds": 15, "renew_seconds": 10, "retry_seconds": 2}  # the chart's values


def holder(admin: Admin) -> str:
    return str(lease(admin).get("holderIdentity") or "")


def wait_holder(admin: Admin, identity: str, timeout: float) -> float:
    """Poll the Lease until `identity` holds it; the monotonic time it was first seen so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if holder(admin) == identity:
            return time.monotonic()
        time.sleep(0.1)
    raise TimeoutError(f"{identity} never took the lease: {lease(admin)}")


def start_pair(admin: Admin, state: Path) -> tuple[list[str], list[OperatorProcess]]:
    install(admin)
    delete_lease(admin)
    suffix = uuid.uuid4().hex[:6]
    ids = [f"a-{suffix}", f"b-{suffix}"]
    args = [a for a in TEST_OPERATOR_ARGS if not a.startswith("--workers")] + ["--workers=16"]
    procs = [OperatorProcess(admin, state / i, [*args, *leader_args(i, **LEASE)]) for i in ids]
    procs[0].start(die_with_parent=True)
    wait_holder(admin, ids[0], 60)
    procs[1].start(die_with_parent=True)  # the webhook configuration points at this one
    return ids, procs


def prepare(
    admin: Admin, state: Path, namespace: str, names: list[str], workers: int
) -> tuple[list[str], list[OperatorProcess], Watcher, list[dict[str, Any]]]:
    """A phase's start: the pair (the first one leading), warmed up, the watches open, the
    burst's manifests ready to create."""
    ids, procs = start_pair(admin, state)
    warm_up(admin)
    admin("create", "namespace", namespace)
    watcher = Watcher(admin, namespace, workers, "tftj.dev/job-name")
    watcher.start()
    manifests = [
        training_job(
            n, replicas=workers, run_seconds=None, pod_labels=HOLD, workers={"resources": SMALL}
        )
        for n in names
    ]
    return ids, procs, watcher, manifests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="tftj-bench-failover-"))
    names = [f"f{i:03d}" for i in range(args.jobs)]
    procs: list[OperatorProcess] = []
    loads = [os.getloadavg()[0]]
    try:
        # ---- baseline: two replicas, no failover
        with LocalCluster(state / "base", die_with_parent=True) as cluster:
            admin = Admin(cluster.kubeconfig)
            _, procs, watcher, manifests = prepare(
                admin, state / "base-ops", "bench-base", names, args.workers
            )
            t0 = apply_many(admin, "bench-base", manifests)
            wait_all(watcher, args.jobs, args.timeout)
            base = phase(watcher, t0, names)
            watcher.stop()
            for proc in procs:
                proc.stop()

        # ---- failover: SIGKILL the leader once its first worker Job exists
        loads.append(os.getloadavg()[0])
        with LocalCluster(state / "fail", die_with_parent=True) as cluster:
            admin = Admin(cluster.kubeconfig)
            ids, procs, watcher, manifests = prepare(
                admin, state / "fail-ops", "bench-fail", names, args.workers
            )
            # The creates go on in the background: the kill lands in the middle of the burst.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                creating = pool.submit(apply_many, admin, "bench-fail", manifests)
                while not watcher.job_seen and not creating.done():
                    time.sleep(0.02)
                procs[0].kill(signal.SIGKILL)
                killed = time.monotonic()
                jobs_at_kill = len(watcher.job_seen)
                t0 = creating.result()
            took_over = wait_holder(admin, ids[1], 120)
            wait_all(watcher, args.jobs, args.timeout)
            fail = phase(watcher, t0, names)
            watcher.stop()

            # ---- handover: the killed replica back as a follower, the leader stopped cleanly
            procs[0].process = None
            procs[0].webhook_port = procs[0].metrics_port = procs[0].liveness_port = 0
            procs[0].start(die_with_parent=True)
            procs[1].stop()
            stopped = time.monotonic()
            handed_over = wait_holder(admin, ids[0], 120)
            for proc in procs:
                proc.stop()
        loads.append(os.getloadavg()[0])
    finally:
        for proc in procs:
            proc.stop()
        shutil.rmtree(state, ignore_errors=True)

    takeover = took_over - killed
    handover = handed_over - stopped
    rows = [
        ("create -> all workers Running, p50", base["running_p50"], fail["running_p50"]),
        ("create -> all workers Running, p95", base["running_p95"], fail["running_p95"]),
        ("create -> last job all Running", base["last_running"], fail["last_running"]),
    ]
    lines = [
        "## Leader failover",
        "",
        f"`bench/failover_bench.py` — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.node()}, {os.cpu_count()} CPUs; two `tftj operator` replicas with leader "
        f"election (lease {LEASE['lease_seconds']} s, renew deadline {LEASE['renew_seconds']} "
        f"s, retry {LEASE['retry_seconds']} s: the chart's defaults), `--workers=16`, on a "
        "fresh local control plane per phase (kwok nodes). "
        f"{args.jobs} jobs x {args.workers} workers created at once (8 parallel `kubectl "
        "create`). Baseline: the same burst in the same run, both replicas up, no failover. "
        f"Failover: the leader SIGKILLed when its first worker Job appeared ({jobs_at_kill} of "
        f"{args.jobs} existed), the creates still going on. Load average (1 min) at the phases' starts and the end: "
        + ", ".join(f"{x:.2f}" for x in loads)
        + ".",
        "",
        "| seconds | baseline | leader killed mid-burst | extra |",
        "|---|---:|---:|---:|",
    ]
    for label, b, f in rows:
        lines.append(f"| {label} | {b:.2f} | {f:.2f} | {f - b:+.2f} ({f / b:.2f}x) |")
    lines += [
        "",
        f"- Takeover after SIGKILL (kill -> the other replica holds the Lease): {takeover:.1f} s "
        f"= {takeover / LEASE['lease_seconds']:.2f} x the lease duration (a follower waits the "
        "lease out from the last renewal it saw, then retries every retry period).",
        f"- Handover after a clean stop (SIGTERM -> the follower holds the released Lease): "
        f"{handover:.1f} s = {handover / LEASE['lease_seconds']:.2f} x the lease duration.",
        "- Every create of the burst was admitted through the failover (the webhook of the "
        "replica that was not killed; apply_many fails on any refusal).\n"
        "- The Lease is polled with kubectl every 0.1 s (each call takes about as long): the "
        "two times are late by up to a few tenths of a second.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        print(f"written to {write_section('## Leader failover', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
