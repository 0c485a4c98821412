#!/usr/bin/env python3
"""tftj side by side with the Go peer, Kubeflow training-operator (TFJob only), in one run.

Every phase runs on a fresh local control plane (testbin/localcluster.py: the same binaries, kwok
nodes) with one operator at a time, and creates the same burst: N jobs x W workers whose pods
kwok holds Running, from 8 parallel `kubectl create` clients, webhooks registered:

- floor: the worker Jobs tftj would create (Indexed, W pods), created directly;
- children: everything tftj's operator creates per job (its ConfigMap, headless Service and
  worker Job, built by its own code), created directly: tftj's design minus its reconcile;
- pods: the same with the worker Job replaced by the W pods its controller would make: the
  floor of a design in which the operator creates pods itself (as the peer does);
- tftj: TFTrainingJobs, `tftj operator --workers=16` under its ServiceAccount;
- tftj, no webhook: the same with its webhook registration removed: the baseline of the
  admission goal (the create latency of the same burst without the webhook);
- peer, tuned: training-operator with `--kube-api-qps=200 --kube-api-burst=400
  --controller-threads=16`; peer, as shipped: its defaults (20/30, 1 thread).

Per phase: create -> all W pods Running (p50/p95/last over jobs), create -> the object admitted
(p50/p95/last) and the apiserver's mean webhook call, operator CPU-seconds over the burst
(summed over its processes: tftj's webhook has processes of its own), the peak RSS of its main
process and the PSS of all its processes at the end (forked, they share pages: PSS counts each
once). `--baseline REV` adds tftj at git revision REV, run from its own source: before and
after a change in the same run. Phases alternate over
`--rounds` rounds (the order reverses every round): the machine is shared and noisy, so the
table gives means and [min-max] ranges. After the tftj and peer phases each webhook is also
hammered alone: C AdmissionReviews in flight at once over kept-alive connections (as the
apiserver holds them), p50/p99.

The peer is built from its pinned Go module by `bash testbin/build.sh peer` (run here when
missing); its CRD and webhook registration are read from the same module (testbin/peeroperator.py).
Writes the "## Operator vs. the Go peer" section of docs/benchmarks.md.

    python bench/peer_bench.py [--jobs 200 --workers 4 --rounds 2] [--phases tftj,floor] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "testbin"), str(REPO / "operator"), str(REPO / "bench")]

from benchdoc import write_section  # noqa: E402
from devoperator import (  # noqa: E402
    WEBHOOK_CONFIG,
    WEBHOOK_PATH,
    Admin,
    OperatorProcess,
    install,
    training_job,
)
from localcluster import LocalCluster  # noqa: E402
from operator_bench import (  # noqa: E402
    HOLD,
    SMALL,
    Watcher,
    admission_review,
    apply_many,
    baseline_tree,
    floor_job,
    held_jobs,
    operator_children,
    pct,
    phase,
    pss_mib,
    rss_mib,
    scale_nodes,
    tree_cpu,
    wait_all,
    warm_up,
)
from peeroperator import (  # noqa: E402
    JOB_NAME_LABEL,
    SHIPPED,
    TUNED,
    PeerOperator,
    peer_binary,
    tfjob,
)

SECTION = "## Operator vs. the Go peer"
PHASES = (
    "floor",
    "children",
    "pods",
    "tftj-base",
    "tftj",
    "tftj-nohook",
    "peer-tuned",
    "peer-shipped",
)
LABELS = {
    "floor": "floor: the same Indexed Jobs created directly",
    "children": "tftj's children (ConfigMap, Service, Job) created directly",
    "pods": "the same with the Job's pods instead of the Job, created directly",
    "tftj-base": "tftj before (`--baseline`)",
    "tftj": "tftj as shipped (`--workers=16`)",
    "tftj-nohook": "tftj, webhook registration removed",
    "peer-tuned": "training-operator, 16 threads, client QPS 200/400",
    "peer-shipped": "training-operator as shipped (QPS 20/30, 1 thread)",
}
NAMESPACE = "bench"
#: What the text says about a run; kept with its figures (--json) for --from-json.
RUN_ARGS = ("jobs", "workers", "concurrency", "requests")


def peak_rss(pid: int) -> float:
    """VmHWM (the most it held since it started) of the operator's process, MiB."""
    return rss_mib(pid, "VmHWM", descendants=False)


# ---- the webhook alone


HAMMER = REPO / "testbin" / "bin" / "webhook-hammer"  # testbin/hammer, built with the peer


def hammer(
    url: str, cafile: Path, body: bytes, concurrency: int, total: int, state: Path
) -> list[float]:
    """Latencies (s) of `total` POSTs of `body` with `concurrency` in flight at any time, over
    kept-alive TLS connections (opened by a warm-up round first, not counted), sent by a Go
    client (testbin/hammer) so that the figures are the webhook's, not a Python client's."""
    body_file = state / "review.json"
    body_file.write_bytes(body)
    out = subprocess.run(
        [
            str(HAMMER),
            f"--url={url}",
            f"--ca={cafile}",
            f"--body={body_file}",
            f"--concurrency={concurrency}",
            f"--total={total}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return [float(line) for line in out.split()]


def tfjob_review(workers: int) -> bytes:
    manifest = {**tfjob("hook", workers, HOLD, SMALL)}
    manifest["metadata"] = {"name": "hook", "namespace": NAMESPACE}
    return admission_review(manifest, group="kubeflow.org", version="v1", kind="TFJob")


# ---- phases


WEBHOOK_CALLS = "apiserver_admission_webhook_admission_duration_seconds"


def webhook_calls(admin: Admin) -> tuple[float, float]:
    """(count, seconds) of the admission webhook calls (any webhook, validating or mutating)
    for CREATEs the apiserver has made so far, by its own histogram: the webhooks' cost as the
    apiserver sees it, its side of the call included."""
    count = total = 0.0
    for line in admin("get", "--raw", "/metrics").stdout.splitlines():
        if line.startswith(WEBHOOK_CALLS) and 'operation="CREATE"' in line:
            if line.startswith(WEBHOOK_CALLS + "_count"):
                count += float(line.split()[-1])
            elif line.startswith(WEBHOOK_CALLS + "_sum"):
                total += float(line.split()[-1])
    return count, total


def burst(
    admin: Admin,
    watcher: Watcher,
    names: list[str],
    manifests: list[dict[str, Any]],
    pid: int | None,
    timeout: float,
) -> dict[str, Any]:
    """Create `manifests` at once; the latencies per job, and `pid`'s CPU over the burst."""
    cpu0 = tree_cpu(pid) if pid else 0.0
    calls0, seconds0 = webhook_calls(admin)
    load0 = os.getloadavg()[0]
    t0 = apply_many(admin, NAMESPACE, manifests)
    created = time.monotonic() - t0
    calls1, seconds1 = webhook_calls(admin)
    wait_all(watcher, len(names), timeout)
    result: dict[str, Any] = phase(watcher, t0, names)
    admitted = [
        (watcher.admitted.get(n) or watcher.job_seen.get(n, float("nan"))) - t0 for n in names
    ]
    result.update(
        admitted_p50=pct(admitted, 50),
        admitted_p95=pct(admitted, 95),
        admitted_last=max(admitted),
        create_calls=created,
        # the mean webhook call of the creates, ms, as the apiserver timed it (NaN: no webhook)
        webhook_call_ms=(seconds1 - seconds0) / (calls1 - calls0) * 1000
        if calls1 > calls0
        else float("nan"),
        filled=watcher.filled,
        load=load0,
    )
    if pid:
        result.update(cpu=tree_cpu(pid) - cpu0, rss=peak_rss(pid), pss=pss_mib(pid))
    watcher.stop()
    return result


def floor_phase(admin: Admin, names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    watcher = Watcher(admin, NAMESPACE, args.workers, "bench/job")
    watcher.start()
    jobs = [floor_job(n, args.workers) for n in names]
    return burst(admin, watcher, names, jobs, None, args.timeout)


def children_phase(
    admin: Admin, names: list[str], args: argparse.Namespace, *, as_pods: bool
) -> dict[str, Any]:
    watcher = Watcher(admin, NAMESPACE, args.workers, "tftj.dev/job-name")
    watcher.start()
    children = operator_children(names, args.workers, NAMESPACE, as_pods=as_pods)
    return burst(admin, watcher, names, children, None, args.timeout)


def tftj_phase(
    admin: Admin,
    names: list[str],
    args: argparse.Namespace,
    state: Path,
    *,
    webhook: bool,
    source: Path | None = None,
) -> dict[str, Any]:
    install(admin)
    proc = OperatorProcess(admin, state / "operator", ["--workers=16"], source_dir=source)
    try:
        proc.start(die_with_parent=True)
        assert proc.process is not None
        warm_up(admin)
        if not webhook:
            admin("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIG)
        watcher = Watcher(admin, NAMESPACE, args.workers, "tftj.dev/job-name")
        watcher.start("tftrainingjobs")
        manifests = held_jobs(names, args.workers)
        result = burst(admin, watcher, names, manifests, proc.process.pid, args.timeout)
        if webhook:
            body = admission_review(training_job("hook", replicas=args.workers, run_seconds=None))
            url = f"https://127.0.0.1:{proc.webhook_port}{WEBHOOK_PATH}"
            result["hook"] = hammer(
                url, proc.cert_dir / "ca.crt", body, args.concurrency, args.requests, state
            )
        return result
    finally:
        proc.stop()


def peer_warm_up(admin: Admin) -> None:
    """One TFJob end to end first (its one pod Running), as warm_up() does for tftj."""
    admin("create", "namespace", "bench-warmup")
    admin(
        "create", "-n", "bench-warmup", "-f", "-", input=json.dumps(tfjob("warmup", 1, HOLD, SMALL))
    )
    selector = f"{JOB_NAME_LABEL}=warmup"
    deadline = time.monotonic() + 120
    while (
        "Running"
        not in admin(
            "get",
            "pods",
            "-n",
            "bench-warmup",
            "-l",
            selector,
            "-o",
            "jsonpath={.items[*].status.phase}",
        ).stdout
    ):
        if time.monotonic() > deadline:
            raise TimeoutError("the peer's warm-up TFJob never ran")
        time.sleep(0.5)


def peer_phase(
    admin: Admin,
    names: list[str],
    args: argparse.Namespace,
    state: Path,
    flags: dict[str, int],
) -> dict[str, Any]:
    peer = PeerOperator(admin.kubeconfig, state / "peer", peer_binary(), flags=dict(flags))
    try:
        peer.start()
        assert peer.process is not None
        peer_warm_up(admin)
        watcher = Watcher(admin, NAMESPACE, args.workers, JOB_NAME_LABEL)
        watcher.start("tfjobs")
        manifests = [tfjob(n, args.workers, HOLD, SMALL) for n in names]
        result = burst(admin, watcher, names, manifests, peer.process.pid, args.timeout)
        result["version"] = peer.version
        if flags == TUNED:
            url = f"https://127.0.0.1:{peer.webhook_port}/validate-kubeflow-org-v1-tfjob"
            cafile = state / "peer-ca.crt"
            cafile.write_bytes(peer.ca_bundle)
            result["hook"] = hammer(
                url, cafile, tfjob_review(args.workers), args.concurrency, args.requests, state
            )
        return result
    finally:
        peer.stop()


def run_phase(name: str, args: argparse.Namespace, state: Path) -> dict[str, Any]:
    names = [f"b{i:03d}" for i in range(args.jobs)]
    nodes = scale_nodes(args.jobs * args.workers)
    with LocalCluster(state / "cluster", nodes=nodes, die_with_parent=True) as cluster:
        admin = Admin(cluster.kubeconfig)
        admin("create", "namespace", NAMESPACE)
        if name == "floor":
            return floor_phase(admin, names, args)
        if name in ("children", "pods"):
            return children_phase(admin, names, args, as_pods=name == "pods")
        if name in ("tftj", "tftj-nohook"):
            return tftj_phase(admin, names, args, state, webhook=name == "tftj")
        if name == "tftj-base":
            return tftj_phase(admin, names, args, state, webhook=True, source=args.baseline_dir)
        return peer_phase(admin, names, args, state, TUNED if name == "peer-tuned" else SHIPPED)


# ---- the table


def summary(values: list[float], fmt: str = "{:.1f}") -> str:
    """Mean and, over more than one round, the [min-max] range."""
    values = [v for v in values if v == v]  # drop NaN
    if not values:
        return "-"
    text = fmt.format(statistics.fmean(values))
    if len(values) > 1:
        text += f" [{fmt.format(min(values))}-{fmt.format(max(values))}]"
    return text


def render(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    def col(name: str, key: str) -> list[float]:
        return [float(r[key]) for r in results.get(name, []) if key in r]

    def mean(name: str, key: str) -> float:
        values = col(name, key)
        return statistics.fmean(values) if values else float("nan")

    def ratio(name: str, key: str, base: str) -> str:
        value = mean(name, key) / mean(base, key)
        return "-" if value != value else f"{value:.2f}x"

    version = next((r["version"] for rs in results.values() for r in rs if "version" in r), None)
    loads = [r["load"] for rs in results.values() for r in rs]
    most = max(len(rs) for rs in results.values())
    rounds = str(most)
    if any(len(rs) != most for rs in results.values()):  # an interrupted run
        rounds += " (times each phase ran: "
        rounds += ", ".join(f"{n} {len(rs)}" for n, rs in results.items()) + ")"
    lines = [
        args.section,
        "",
        f"`bench/peer_bench.py` — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.node()}, {os.cpu_count()} CPUs. {args.jobs} jobs x {args.workers} workers "
        f"created at once (8 parallel `kubectl create`), pods held Running by kwok; one operator "
        f"at a time, each phase on a fresh local control plane (kube-apiserver 1.36, etcd, kwok), "
        "webhooks registered unless said. "
        + (
            f"The peer is Kubeflow training-operator {version} (TFJob only) built from its Go "
            "module (`bash testbin/build.sh peer`). "
            if version  # a peer phase ran
            else ""
        )
        + f"{rounds} round(s), phase order reversed every round; mean [min-max] over rounds. "
        f"Load average (1 min) at the bursts' starts: {min(loads):.1f}-{max(loads):.1f} "
        "(the machine is shared).",
        "",
        "| create -> all workers Running, s | p50 | p95 | last | operator CPU-s | peak RSS, MiB "
        "| PSS at the end, MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in PHASES:
        if name not in results:
            continue
        lines.append(
            f"| {LABELS[name]} | {summary(col(name, 'running_p50'))} | "
            f"{summary(col(name, 'running_p95'))} | {summary(col(name, 'last_running'))} | "
            f"{summary(col(name, 'cpu'))} | {summary(col(name, 'rss'), '{:.0f}')} | "
            f"{summary(col(name, 'pss'), '{:.0f}')} |"
        )
    lines += ["", "Ratios of the means (lower is better for tftj):", ""]
    lines += [
        "| tftj vs. | p50 | p95 | last | CPU-s | peak RSS | PSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for base in ("floor", "children", "pods", "tftj-base", "peer-tuned", "peer-shipped"):
        if base in results and "tftj" in results:
            keys = ("running_p50", "running_p95", "last_running", "cpu", "rss", "pss")
            lines.append(
                f"| {LABELS[base].split(':')[0]} | "
                + " | ".join(ratio("tftj", k, base) for k in keys)
                + " |"
            )
    lines += [
        "",
        "Admission: create -> the object exists (admitted), same burst, s:",
        "",
        "| phase | p50 | p95 | last | the 8 `kubectl create` calls | the apiserver's webhook "
        "call, mean ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in PHASES:
        if name in results:
            lines.append(
                f"| {LABELS[name]} | {summary(col(name, 'admitted_p50'), '{:.2f}')} | "
                f"{summary(col(name, 'admitted_p95'), '{:.2f}')} | "
                f"{summary(col(name, 'admitted_last'), '{:.2f}')} | "
                f"{summary(col(name, 'create_calls'), '{:.2f}')} | "
                f"{summary(col(name, 'webhook_call_ms'), '{:.0f}')} |"
            )
    for name in ("tftj", "tftj-base"):
        if name in results and "tftj-nohook" in results:
            lines += [
                "",
                f"Goal: admission adds <= 20% to the create latency of the burst without the "
                f"webhook. {LABELS[name]}, with / without: "
                f"p50 {ratio(name, 'admitted_p50', 'tftj-nohook')}, "
                f"p95 {ratio(name, 'admitted_p95', 'tftj-nohook')}, "
                f"last {ratio(name, 'admitted_last', 'tftj-nohook')}.",
            ]
    hooks = {n: [x for r in results.get(n, []) for x in r.get("hook", [])] for n in PHASES}
    if any(hooks.values()):
        lines += [
            "",
            f"The webhook alone: {args.requests} AdmissionReviews per round, {args.concurrency} in "
            "flight at any time over kept-alive HTTPS connections (a Go client, testbin/hammer, "
            "on the same 2 cores), ms. Goal for tftj: p99 < 25 ms.",
            "",
            "| webhook | p50 | p95 | p99 | max |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, values in hooks.items():
            if values:
                lines.append(
                    f"| {LABELS[name]} | "
                    + " | ".join(f"{pct(values, q) * 1000:.1f}" for q in (50, 95, 99, 100))
                    + " |"
                )
    filled = {n: sum(r["filled"] for r in rs) for n, rs in results.items()}
    if any(filled.values()):
        lines += [
            "",
            "A kubectl watch missed events in: "
            + ", ".join(f"{n} ({v} records)" for n, v in filled.items() if v)
            + "; those were filled in by a listing, so those phases read late.",
        ]
    return "\n".join(lines) + "\n"


def ensure_peer_built() -> None:
    if not (peer_binary().exists() and HAMMER.exists()):
        subprocess.run(["bash", str(REPO / "testbin" / "build.sh"), "peer"], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the operator of git revision REV (phase tftj-base): before/after",
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures here (each phase)")
    parser.add_argument("--from-json", type=Path, help="render figures of an earlier run")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--section",
        default=SECTION,
        help="the docs/benchmarks.md section to write (default: %(default)s)",
    )
    args = parser.parse_args()
    chosen = [p for p in PHASES if p in args.phases.split(",")]
    if not args.baseline:
        chosen = [p for p in chosen if p != "tftj-base"]
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s) {sorted(unknown)}; known: {', '.join(PHASES)}")

    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        LABELS.update(saved["labels"])
        for key, value in saved.get("args", {}).items():
            setattr(args, key, value)
        results = saved["results"]
    else:
        if any(p.startswith("peer") for p in chosen):
            ensure_peer_built()
        results = {}
        if args.baseline:
            args.baseline_dir = baseline_tree(
                args.baseline, Path(tempfile.mkdtemp(prefix="tftj-bench-base-")) / "tree"
            )
            LABELS["tftj-base"] = f"tftj at {args.baseline}"
        for round_no in range(args.rounds):
            order = chosen if round_no % 2 == 0 else chosen[::-1]
            for name in order:
                state = Path(tempfile.mkdtemp(prefix=f"tftj-bench-peer-{name}-"))
                print(f"bench: round {round_no + 1}, {name}", file=sys.stderr, flush=True)
                try:
                    results.setdefault(name, []).append(run_phase(name, args, state))
                finally:
                    shutil.rmtree(state, ignore_errors=True)
                if args.json:  # after every phase: an interrupted run can still be rendered
                    saved = {k: getattr(args, k) for k in RUN_ARGS}
                    args.json.write_text(
                        json.dumps({"labels": LABELS, "args": saved, "results": results})
                    )
        if args.baseline:
            shutil.rmtree(args.baseline_dir.parents[1], ignore_errors=True)
    text = render(results, args)
    print(text)
    if not args.no_write:
        print(f"written to {write_section(args.section, text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
