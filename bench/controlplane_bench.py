#!/usr/bin/env python3
"""Benchmark of the local control plane (testbin/): build, start, memory, pod throughput.

    .venv/bin/python bench/controlplane_bench.py [--jobs 250 --pods-per-job 4] [--no-write]

Measures, on this machine:
  * cold build time: read from the build cache, where testbin/build.sh records how
    long each component's first build took (a cold build is not repeated here: it
    takes ~20 min; run `TFTJ_TESTBIN_CACHE=$(mktemp -d) bash testbin/build.sh` with an
    empty GOCACHE to measure it again);
  * warm start: `LocalCluster.start()` with cached binaries, fresh state dir, until the
    apiserver is ready, controller-manager/scheduler healthy and all nodes Ready
    (twice; both figures reported);
  * RSS of each component, idle and right after the load;
  * throughput: time until N Jobs x M pods (default 250 x 4 = 1,000 pods) are all
    Running, from the moment `kubectl apply` starts. Baseline measured in the same run:
    one Job of M pods (the end-to-end latency of a single Job on the idle cluster).
    Floor: the Job controller creates pods at <= its client QPS (200/s here) and the
    scheduler binds at <= 200/s, so N*M pods need at least N*M/200 s.

Writes the figures to the "Local control plane" section of docs/benchmarks.md,
keeping every other section as it is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "testbin"))

from benchdoc import DOC as BENCH_DOC  # noqa: E402
from benchdoc import write_section  # noqa: E402
from clusterkit import HOLD_LABEL, Kubectl, job_manifest, wait_for  # noqa: E402
from localcluster import COMPONENTS, DEFAULT_BIN_DIR, LocalCluster  # noqa: E402

SECTION = "## Local control plane"
#: A from-scratch build (empty GOMODCACHE, GOCACHE and testbin cache, fresh copy of
#: testbin/) cannot be repeated on every benchmark run; this records the last one.
COLD_FRESH = (
    "From scratch (empty GOMODCACHE, GOCACHE and binary cache, a fresh copy of testbin/, so "
    "the ~1.5 GB of modules are downloaded too), measured 2026-11-28 on the same machine while "
    "other work kept the load average at 8-14 (the build ran at `nice 19` for its first 26 "
    "minutes): 36.4 min (k8s 29.6, etcd 1.4, kwok 2.3, helm 3.0). It needs ~4 GB of Go build "
    "cache and ~1.5 GB of module cache."
)
CLIENT_QPS = 200  # --kube-api-qps of controller-manager and scheduler (localcluster.py)


def build_times() -> dict[str, float]:
    """Seconds each component's cold build took, as recorded by testbin/build.sh."""
    dirs_file = DEFAULT_BIN_DIR / ".cache-dirs"
    result: dict[str, float] = {}
    if not dirs_file.exists():
        return result
    for line in dirs_file.read_text().split():
        marker = Path(line) / ".build-seconds"
        if marker.exists():
            result[Path(line).name] = float(marker.read_text().strip())
    return result


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, {platform.system()} {platform.release()}"


def count_running(kubectl: Kubectl, selector: str) -> int:
    out = kubectl(
        "get", "pods", "-A", "-l", selector, "--field-selector=status.phase=Running", "-o", "name"
    ).stdout
    return len(out.split())


def time_jobs_running(kubectl: Kubectl, jobs: int, pods_per_job: int, tag: str) -> dict[str, float]:
    """Create `jobs` held Jobs of `pods_per_job` pods; seconds until all pods Running."""
    selector = f"bench={tag}"
    manifests = []
    for i in range(jobs):
        job = job_manifest(
            f"{tag}-{i:04d}",
            completions=pods_per_job,
            pod_labels={HOLD_LABEL: "true", "bench": tag},
        )
        manifests.append(job)
    started = time.monotonic()
    # One `kubectl create` of a List: one process, one POST per Job (apply would add
    # a GET per object and measure kubectl more than the control plane).
    kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}),
        timeout=600,
    )
    created = time.monotonic() - started
    want = jobs * pods_per_job
    wait_for(
        lambda: count_running(kubectl, selector) >= want,
        timeout=900,
        interval=0.5,
        message=f"{want} running pods ({tag})",
    )
    total = time.monotonic() - started
    return {
        "pods": want,
        "created_s": created,
        "all_running_s": total,
        "after_create_s": total - created,
    }


def rss_mib(cluster: LocalCluster) -> dict[str, float]:
    return {k: round(v / 2**20, 1) for k, v in cluster.rss_bytes().items()}


def run(jobs: int, pods_per_job: int) -> dict[str, Any]:
    results: dict[str, Any] = {"date": dt.date.today().isoformat(), "machine": machine()}
    # Other work on the machine skews every figure; record how busy it was.
    results["loadavg_before"] = os.getloadavg()
    results["build_seconds"] = build_times()
    results["versions"] = sorted(results["build_seconds"])
    state = Path(tempfile.mkdtemp(prefix="tftj-bench-"))
    try:
        starts = []
        for attempt in range(2):
            cluster = LocalCluster(state / f"run{attempt}", die_with_parent=True)
            began = time.monotonic()
            cluster.start()
            starts.append(time.monotonic() - began)
            if attempt == 0:
                cluster.stop()
        results["warm_start_s"] = starts
        results["rss_idle_mib"] = rss_mib(cluster)

        kubectl = Kubectl.for_cluster(cluster, "default")
        base = time_jobs_running(kubectl, 1, pods_per_job, "baseline")
        results["baseline"] = base
        load = time_jobs_running(kubectl, jobs, pods_per_job, "load")
        results["load"] = load
        results["rss_loaded_mib"] = rss_mib(cluster)
        results["floor_s"] = load["pods"] / CLIENT_QPS
        results["loadavg_after"] = os.getloadavg()
        cluster.stop()
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return results


def render(r: dict[str, Any], jobs: int, pods_per_job: int) -> str:
    b = r["build_seconds"]
    build_lines = (
        "\n".join(f"| {k} | {v / 60:.1f} min |" for k, v in sorted(b.items()))
        or "| (no record) | |"
    )
    total_build = sum(b.values())
    idle, loaded = r["rss_idle_mib"], r["rss_loaded_mib"]
    mem_lines = "\n".join(
        f"| {c} | {idle.get(c, 0):.0f} MiB | {loaded.get(c, 0):.0f} MiB |" for c in COMPONENTS
    )
    load, base = r["load"], r["baseline"]
    return f"""{SECTION}

Measured by `bench/controlplane_bench.py` on {r["date"]}, {r["machine"]}; 1-minute load
average {r["loadavg_before"][0]:.1f} before and {r["loadavg_after"][0]:.1f} after the run (other work
shares the machine).
Components: etcd, kube-apiserver, kube-controller-manager, kube-scheduler built from Go
modules by `testbin/build.sh`, kwok as the node layer (2 GPU nodes + 1 CPU node).

**Cold build**, as recorded by `testbin/build.sh` for the binaries in use (empty Go build
cache; Go modules already downloaded): {total_build / 60:.1f} min in total.
{COLD_FRESH}

| component module | cold build |
|---|---|
{build_lines}

A second `make testbin` (same machine, any clone) finds the binaries in
`~/.cache/tftj/testbin/` and takes about a second.

**Warm start** (binaries cached, fresh state dir, until `/readyz` ok, controller-manager and
scheduler healthy, all nodes Ready): {r["warm_start_s"][0]:.1f} s and {r["warm_start_s"][1]:.1f} s.

**Memory** (RSS):

| component | idle | after {load["pods"]} running pods |
|---|---|---|
{mem_lines}
| **total** | {sum(idle.values()):.0f} MiB | {sum(loaded.values()):.0f} MiB |

**Pod throughput**: {jobs} Jobs x {pods_per_job} pods = {load["pods"]} pods. One
`kubectl create` of the {jobs} Jobs took {load["created_s"]:.1f} s; all {load["pods"]} pods were
Running **{load["all_running_s"]:.1f} s** after it started
({load["pods"] / load["all_running_s"]:.0f} pods/s end to end), {load["after_create_s"]:.1f} s
after the last Job was created. The pods carry the hold label, so they stay Running.
Baseline in the same run: 1 Job x {pods_per_job} pods Running {base["all_running_s"]:.1f} s
after its `kubectl create` started.
Floor: controller-manager and scheduler clients are limited to {CLIENT_QPS} requests/s, so
{load["pods"]} pod creations need at least {r["floor_s"]:.1f} s.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=250)
    parser.add_argument("--pods-per-job", type=int, default=4)
    parser.add_argument(
        "--no-write", action="store_true", help="print, do not update docs/benchmarks.md"
    )
    parser.add_argument("--from-json", help="render results printed by an earlier run")
    args = parser.parse_args()
    missing = LocalCluster(tempfile.gettempdir()).missing_binaries()
    if missing:
        print(f"missing binaries {missing}: run `make testbin` first", file=sys.stderr)
        return 1
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
    else:
        results = run(args.jobs, args.pods_per_job)
    print(json.dumps(results, indent=2))
    text = render(results, args.jobs, args.pods_per_job)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
        print(f"updated {BENCH_DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
