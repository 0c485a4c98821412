#!/usr/bin/env python3
"""Soak: N TFTrainingJobs x W workers created, run to completion on kwok and deleted, R times
in a row with one operator running throughout (default 1,000 x 4, 3 rounds).

Per round: create -> every job Succeeded, delete -> every child gone, the operator's RSS once
it has drained (its caches and indexes empty again, read on its /metrics) and its CPU. The run
fails (exit 1) when a job is stuck, a child is left over or the operator still holds objects
after a round; the RSS after each round shows whether memory returns to its plateau.
tests/cluster/test_operator_soak.py is the CI-sized version (30 jobs x 2, asserting counts).

Writes the "## Soak" section of docs/benchmarks.md.

    .venv/bin/python bench/soak_bench.py [--jobs 1000 --workers 4 --rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "testbin"), str(REPO / "operator"), str(REPO / "bench")]

from benchdoc import write_section  # noqa: E402
from devoperator import Admin, OperatorProcess, training_job  # noqa: E402
from localcluster import wait_for  # noqa: E402
from operator_bench import (  # noqa: E402
    SMALL,
    apply_many,
    baseline_tree,
    bench_operator,
    both_rss,
    rss_mib,
    tree_cpu,
)

NAMESPACE = "soak"
CHILD_KINDS = "jobs,pods,configmaps,services"


def poll(predicate: Callable[[], Any], timeout: float, what: str, every: float = 2.0) -> Any:
    # A failing check (kubectl, say) ends the soak at once rather than counting as "not yet".
    return wait_for(predicate, timeout, interval=every, message=f"soak: {what}", fatal=(Exception,))


def phases(admin: Admin) -> list[str]:
    out = admin(
        "get",
        "tftj",
        "-n",
        NAMESPACE,
        "-o",
        'jsonpath={range .items[*]}{.status.phase}{"\\n"}{end}',
        timeout=120,
    ).stdout
    return [line.strip() for line in out.splitlines()]


def children(admin: Admin) -> int:
    out = admin(
        "get", CHILD_KINDS, "-n", NAMESPACE, "-l", "tftj.dev/job-name", "-o", "name", timeout=120
    )
    return len(out.stdout.split())


def one_round(
    args: argparse.Namespace, admin: Admin, proc: OperatorProcess, pid: int, round_: int
) -> dict[str, Any]:
    names = [f"r{round_}-{i:04d}" for i in range(args.jobs)]
    manifests = [
        training_job(
            n, replicas=args.workers, run_seconds=args.run_seconds, workers={"resources": SMALL}
        )
        for n in names
    ]
    cpu0 = tree_cpu(pid)
    t0 = apply_many(admin, NAMESPACE, manifests)
    done = poll(
        lambda: (p := phases(admin)).count("Succeeded") == args.jobs and p,
        args.timeout,
        f"round {round_}: all {args.jobs} jobs Succeeded",
    )
    succeeded = time.monotonic() - t0
    live = proc.held()
    live_rss = both_rss(pid)
    t1 = time.monotonic()
    admin("delete", "tftj", "--all", "-n", NAMESPACE, "--wait=false", timeout=300)
    poll(
        lambda: not phases(admin) and children(admin) == 0,
        args.timeout,
        f"round {round_}: every job and child deleted",
    )
    deleted = time.monotonic() - t1
    poll(
        lambda: not any(proc.held().values()),
        args.timeout,
        f"round {round_}: the operator's caches and indexes empty",
    )
    return {
        "succeeded_s": succeeded,
        "deleted_s": deleted,
        "phases": sorted(set(done)),
        "live_pods": live.get("tftj_operator_cache_objects/Pod", 0),
        "live_rss": live_rss,
        "rss": both_rss(pid),
        "rss_total": rss_mib(pid, descendants=False),  # the process that holds the caches
        "peak_rss": both_rss(pid, "VmHWM"),
        "cpu": tree_cpu(pid) - cpu0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run-seconds", type=float, default=5)
    parser.add_argument("--timeout", type=float, default=1800, help="per step of a round")
    parser.add_argument("--candidate", metavar="REV", help="run the operator of git revision REV")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="tftj-bench-soak-"))
    rounds: list[dict[str, Any]] = []
    try:
        source = baseline_tree(args.candidate, state / "src") if args.candidate else None
        pods = args.jobs * args.workers
        with bench_operator(state, pods, source, NAMESPACE) as (admin, proc, pid):
            # Counted from empty: the warm-up job goes before the first round.
            admin("delete", "tftj", "warmup", "-n", "bench-warmup", "--wait=true")
            poll(lambda: not any(proc.held().values()), 120, "warm-up job forgotten")
            idle = both_rss(pid)
            loads = [os.getloadavg()[0]]
            for round_ in range(args.rounds):
                rounds.append(one_round(args, admin, proc, pid, round_))
                print(f"soak: round {round_}: {rounds[-1]}", file=sys.stderr)
            loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(state, ignore_errors=True)

    lines = [
        "## Soak",
        "",
        f"`bench/soak_bench.py {' '.join(sys.argv[1:])}` — "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} "
        f"CPUs; one local control plane with kwok nodes sized for the pods, one operator "
        f"(`--workers=16`{f', at `{args.candidate}`' if args.candidate else ''}) throughout. "
        f"Each round: {args.jobs} jobs x {args.workers} workers created at once (8 parallel "
        f"`kubectl create`), every worker runs {args.run_seconds:g} s on kwok, every job "
        "Succeeded, then all deleted (`kubectl delete tftj --all`) until no Job, pod, "
        "ConfigMap or Service of theirs is left and the operator's caches and indexes "
        "(tftj_operator_cache_objects, tftj_operator_index_entries) are empty again. Load "
        f"average (1 min) at the start and the end: {loads[0]:.2f}, {loads[1]:.2f}. Operator "
        f"RSS after the warm-up job: {idle} MiB (the operator process / PSS of it and its "
        "webhook processes together; the peak column: the process's peak / PSS at the end).",
        "",
        "| round | create -> all Succeeded s | delete -> all gone s | operator CPU-s "
        "| pods cached, all live | RSS MiB, all live | RSS MiB after the round | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(rounds):
        lines.append(
            f"| {i + 1} | {r['succeeded_s']:.0f} | {r['deleted_s']:.0f} | {r['cpu']:.0f} | "
            f"{r['live_pods']:.0f} | {r['live_rss']} | {r['rss']} | {r['peak_rss']} |"
        )
    growth = rounds[-1]["rss_total"] - rounds[0]["rss_total"]
    lines += [
        "",
        f"No job stuck, no child left over, caches and indexes empty after every round. RSS "
        f"after the last round vs after the first: {growth:+.0f} MiB "
        f"({rounds[-1]['rss_total'] / rounds[0]['rss_total']:.2f}x).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        print(f"written to {write_section('## Soak', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
